"""The one-standard-error rule: a deterministic function of the trial records."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from digits.errors import DigitsError
from digits.selection import Candidate, decide, pooled_sd
from tests.helpers import assert_says

# Scores (validation NLL, lower is better) and FLOPs per image of a search of 6 trials.
TRIALS = [
    Candidate(1, 0.0500, 4_000_000),
    Candidate(2, 0.0460, 15_000_000),  # the best
    Candidate(3, 0.0490, 6_000_000),  # inside the band, cheaper than the best
    Candidate(4, 0.0530, 1_000_000),  # cheapest of all, outside the band
    Candidate(5, 0.0475, 9_000_000),
    Candidate(6, 0.0700, 500_000),
]
SE = 0.004  # band: scores <= 0.0500


def test_one_se_takes_the_fewest_flops_within_one_standard_error_of_the_best() -> None:
    decision = decide(TRIALS, SE, "one_se")
    assert decision.best.trial == 2
    assert decision.band_limit == pytest.approx(0.050)
    assert decision.chosen.trial == 1  # 0.0500 sits on the edge: inside; 4 MFLOPs


def test_best_takes_the_best_score_whatever_it_costs() -> None:
    decision = decide(TRIALS, SE, "best")
    assert decision.chosen == decision.best == TRIALS[1]


def test_a_score_just_past_the_edge_is_outside() -> None:
    past = [*TRIALS[1:], Candidate(1, 0.0500 + 1e-9, 4_000_000)]
    assert decide(past, SE, "one_se").chosen.trial == 3


def test_equal_flops_go_to_the_earliest_trial_not_the_better_score() -> None:
    tied = [Candidate(1, 0.049, 5), Candidate(2, 0.046, 9), Candidate(3, 0.047, 5)]
    assert decide(tied, SE, "one_se").chosen.trial == 1
    assert decide(list(reversed(tied)), SE, "one_se").chosen.trial == 1, "order of records"


def test_equal_best_scores_go_to_the_earliest_trial() -> None:
    tied = [Candidate(3, 0.046, 9), Candidate(2, 0.046, 8), Candidate(1, 0.080, 1)]
    assert decide(tied, SE, "best").chosen.trial == 2


def test_perturbing_every_score_by_up_to_1e_6_keeps_the_choice() -> None:
    """Another CPU gives other last digits; away from the band's edge the choice holds. Trial 1,
    exactly on the edge, is moved 1e-5 inside so that it is not decided by the perturbation."""
    records = [Candidate(1, 0.04999, 4_000_000), *TRIALS[1:]]
    rng = random.Random(0)
    for _ in range(200):
        moved = [Candidate(c.trial, c.score + rng.uniform(-1e-6, 1e-6), c.flops) for c in records]
        sd = SE + rng.uniform(-1e-6, 1e-6)
        assert decide(moved, sd, "one_se").chosen.trial == 1
        assert decide(moved, sd, "best").chosen.trial == 2


def test_one_se_without_a_standard_error_names_the_params_to_set() -> None:
    with pytest.raises(DigitsError) as error:
        decide(TRIALS, None, "one_se")
    assert_says(str(error.value), "tuner.rescored_trials", "tuner.noise_seeds", "selection: best")


def test_no_trial_is_one_error() -> None:
    with pytest.raises(DigitsError) as error:
        decide([], SE, "one_se")
    assert_says(str(error.value), "no trial completed", "KERASTUNER_DEBUG=1")


def test_pooled_sd_weights_each_group_by_its_degrees_of_freedom() -> None:
    groups = [[1.0, 2.0, 3.0], [10.0, 14.0]]  # variances 1 (2 dof) and 8 (1 dof)
    assert pooled_sd(groups) == pytest.approx(math.sqrt((2 * 1 + 1 * 8) / 3))
    assert pooled_sd([[5.0], [7.0, 7.0]]) == 0.0
    assert pooled_sd([[5.0], []]) is None


@pytest.mark.parametrize(("rule", "bands"), [("one_se", 1), ("best", 0)])
def test_the_progress_plot_draws_the_band_only_when_the_rule_has_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rule: str, bands: int
) -> None:
    from digits import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(figure))
    rows = [
        {"trial": c.trial, "score": c.score, "best_so_far": min(t.score for t in TRIALS[: i + 1])}
        for i, c in enumerate(TRIALS)
    ]
    plots.tuning_progress(rows, decide(TRIALS, SE, rule), tmp_path / "progress.png", "val NLL")
    (axes,) = drawn[0].axes
    labels = [patch.get_label() for patch in axes.patches]
    assert sum("standard error" in label for label in labels) == bands, labels
