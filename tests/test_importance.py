"""What mattered: the surrogate ranks the dimension that drives the score first."""

from __future__ import annotations

import dataclasses

import numpy as np

from digits.importance import importances, searched_dimensions
from tests.helpers import TINY_TUNER


def test_the_dimension_that_drives_the_score_ranks_first() -> None:
    space = TINY_TUNER.space
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        row = {
            "conv_blocks": int(rng.choice([1, 2])),
            "base_filters": int(rng.choice([4, 8])),
            "first_kernel_size": int(rng.choice([3, 5])),
            "batch_norm": bool(rng.choice([True, False])),
            "dropout": float(rng.choice([0.1, 0.2, 0.3])),
            "learning_rate": float(10 ** rng.uniform(-3, -2)),
        }
        row["score"] = 0.9 + 0.05 * (row["learning_rate"] > 0.003) + rng.normal(0, 0.002)
        rows.append(row)
    found = importances(rows, space)
    assert found is not None and set(found) == set(searched_dimensions(space))
    assert max(found, key=found.get) == "learning_rate"


def test_too_few_trials_or_nothing_searched_give_no_importances() -> None:
    rows = [{"score": 0.9, "conv_blocks": 1}] * 3
    assert importances(rows, TINY_TUNER.space) is None
    fixed = dataclasses.replace(TINY_TUNER.space, dimensions=())
    assert importances(rows * 3, fixed) is None
