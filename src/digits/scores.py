"""NLL and Brier score of predicted probabilities: computed here once, for the temperature fit
(`digits.calibration`), evaluate and the benchmarks alike. Free of the model and of the test
set's files, so the train stage, which fits the temperature, does not depend on evaluation code.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss

from digits.data import NUM_CLASSES

DIGITS = np.arange(NUM_CLASSES)


def _rows_summing_to_one(probabilities: np.ndarray) -> np.ndarray:
    """float64 rows renormalised: float32 rows sum to 1 only within ~2e-7, which scikit-learn's
    float64 sum-to-one check rejects."""
    rows = np.asarray(probabilities, dtype=np.float64)
    return rows / rows.sum(axis=1, keepdims=True)


def nll(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood, -log p(true digit) in nats, of probabilities N x 10 for
    labels N int in 0..9 (`sklearn.metrics.log_loss`, which clips p to float64's eps)."""
    return float(log_loss(labels, _rows_summing_to_one(probabilities), labels=DIGITS))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over images of the squared distance between the one-hot label and the 10
    probabilities, summed over the classes, in [0, 2] (Brier 1950, "Verification of forecasts
    expressed in terms of probability", Monthly Weather Review 78;
    `sklearn.metrics.brier_score_loss`, multiclass): labels N int, probabilities N x 10."""
    rows = _rows_summing_to_one(probabilities)
    return float(brier_score_loss(labels, rows, labels=DIGITS))
