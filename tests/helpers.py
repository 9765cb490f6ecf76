"""Helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np

from digits.params import SearchDimension, SearchSpace, TunerParams


def assert_same_arrays(left: list[np.ndarray], right: list[np.ndarray]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        np.testing.assert_array_equal(a, b)


def _space() -> SearchSpace:
    return SearchSpace(
        (
            SearchDimension("conv_blocks", values=(1, 2)),
            SearchDimension("convs_per_block", values=(1,)),
            SearchDimension("base_filters", values=(4, 8)),
            SearchDimension("kernel_size", values=(3,)),
            SearchDimension("batch_norm", values=(True, False)),
            SearchDimension("dropout", min=0.1, max=0.3, step=0.1),
            SearchDimension("dense_units", values=(16,)),
            SearchDimension("learning_rate", min=1e-3, max=1e-2, sampling="log"),
        )
    )


# A search small enough for tests: 2 one-epoch trials on 200 images.
TINY_TUNER = TunerParams(
    max_trials=2, num_initial_points=1, seed=3, epochs_per_trial=1, images_per_trial=200,
    batch_size=64, early_stopping_patience=0, workers=0, trial_timeout_minutes=5,
    trials_per_process=None, space=_space(),
)  # fmt: skip
