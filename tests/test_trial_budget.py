"""benchmarks/trial_budget.py's decision: the longer search pays when its mean best validation
accuracy is more than 2 standard errors of the difference above the short one's, or at most 2
below with at least 10% fewer FLOPs per image."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest

from digits.errors import DigitsError
from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def trial_budget() -> ModuleType:
    return load_benchmark("trial_budget")


def arm(accuracies: list[float], mflops: float, filters: int = 24) -> dict[str, Any]:
    return {
        "runs": [{"best_val_accuracy": accuracy} for accuracy in accuracies],
        "mflops": mflops,
        "chosen": {"base_filters": filters},
    }


# Both arms have within-arm sd 0.001, so the standard error of the difference of two 3-run
# means is 0.001 * sqrt(2/3) = 0.000816 and the 2-standard-error bar is 0.001633.
SHORT = arm([0.993, 0.994, 0.995], mflops=5.0)


@pytest.mark.parametrize(
    ("long", "met"),
    [
        (arm([0.9947, 0.9957, 0.9967], mflops=5.0, filters=32), True),  # +0.0017: above the bar
        (arm([0.9945, 0.9955, 0.9965], mflops=5.0, filters=32), False),  # +0.0015: inside it
        (arm([0.9925, 0.9935, 0.9945], mflops=4.4, filters=16), True),  # level, 12% cheaper
        (arm([0.9925, 0.9935, 0.9945], mflops=4.51, filters=16), False),  # level, 9.8% cheaper
        (arm([0.9912, 0.9922, 0.9932], mflops=1.0, filters=8), False),  # 0.0018 worse: too far
    ],
)
def test_the_longer_search_pays_above_the_bar_or_level_and_cheaper(
    trial_budget: ModuleType, long: dict[str, Any], met: bool
) -> None:
    decision = trial_budget.decide(SHORT, long)
    assert decision["standard_error_of_difference"] == pytest.approx(0.000816, abs=1e-6)
    assert decision["goal_met"] is met
    assert decision["same_point"] is False


def test_the_standard_error_pools_uneven_groups_by_their_degrees_of_freedom(
    trial_budget: ModuleType,
) -> None:
    # Variances 1e-6 (2 dof) and 4e-6 (1 dof): pooled (2e-6 + 4e-6) / 3, so sd sqrt(2) * 1e-3,
    # and the standard error of the difference sqrt(2e-6) * sqrt(1/3 + 1/2).
    found = trial_budget.difference([0.993, 0.994, 0.995], [0.996, 0.99883])
    assert found["pooled_sd"] == pytest.approx(math.sqrt(2e-6), abs=1e-6)
    expected_se = math.sqrt(2e-6) * math.sqrt(1 / 3 + 1 / 2)
    assert found["standard_error_of_difference"] == pytest.approx(expected_se, abs=1e-6)
    assert found["degrees_of_freedom"] == 3


def test_one_seed_a_point_is_refused(trial_budget: ModuleType) -> None:
    with pytest.raises(DigitsError, match="2 or more seeds"):
        trial_budget.difference([0.993], [0.995])


def test_the_same_point_is_reported_as_such(trial_budget: ModuleType) -> None:
    assert trial_budget.decide(SHORT, SHORT)["same_point"] is True
    assert trial_budget.decide(SHORT, SHORT)["goal_met"] is False
