"""Which hyperparameters moved the search's score: a random-forest surrogate of the trials, with
permutation importance, and each dimension's marginal.

Method: fit scikit-learn's `RandomForestRegressor` to (hyperparameters -> score) over the
finished trials, then `sklearn.inspection.permutation_importance`: how much the surrogate's R^2
drops when one dimension's values are shuffled among the trials (Breiman 2001; scikit-learn user
guide, "Permutation feature importance"). With few trials (the default search has 8) the ranking
is a hint, not a finding; it firms up at tens of trials (`dvc exp run -S tuner.max_trials=50`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance

from digits.params import SearchSpace

# Fewer trials than this leave nothing to fit: importances are reported as null.
MIN_TRIALS = 4
SEED = 0


def searched_dimensions(space: SearchSpace) -> list[str]:
    """The dimensions that take more than one value, in declaration order."""
    return [dimension.name for dimension in space.dimensions if dimension.size > 1]


def importances(
    rows: Sequence[dict], space: SearchSpace, repeats: int = 20
) -> dict[str, float] | None:
    """Permutation importance (drop in the surrogate's R^2, unitless; larger mattered more) of
    each searched dimension, from trial rows holding `score` and every dimension's value.

    None with fewer than `MIN_TRIALS` trials or no dimension searched.
    """
    names = searched_dimensions(space)
    if len(rows) < MIN_TRIALS or not names:
        return None
    features = np.array([[float(row[name]) for name in names] for row in rows])
    scores = np.array([row["score"] for row in rows])
    forest = RandomForestRegressor(n_estimators=200, random_state=SEED).fit(features, scores)
    result = permutation_importance(forest, features, scores, n_repeats=repeats, random_state=SEED)
    return {
        name: round(float(value), 6)
        for name, value in zip(names, result.importances_mean, strict=True)
    }
