"""Score the trained model on the test set, once, and keep its predicted probabilities.

error_analysis works from the saved probabilities and never reruns the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.files import atomic_path, read_npz

CALIBRATION_BINS = 15


@dataclass(frozen=True)
class Predictions:
    """Per-sample predicted probabilities (N x 10) and the true labels of the test set."""

    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def wrong(self) -> np.ndarray:
        return self.predicted != self.labels


def save_predictions(predictions: Predictions, path: Path) -> None:
    with atomic_path(path, verify=load_predictions) as temporary:
        np.savez_compressed(
            temporary, probabilities=predictions.probabilities, labels=predictions.labels
        )


def load_predictions(path: Path | str) -> Predictions:
    fix = "run `dvc repro evaluate` to regenerate it"
    probabilities, labels = read_npz(path, ("probabilities", "labels"), fix)
    if probabilities.ndim != 2 or probabilities.shape != (len(labels), NUM_CLASSES):
        raise DigitsError(
            f"{path}: expected N x 10 probabilities, got {probabilities.shape}: {fix}"
        )
    return Predictions(probabilities, labels)


def cross_entropy(predictions: Predictions) -> float:
    """Mean negative log-likelihood of the true class (no label smoothing)."""
    true_class = predictions.probabilities[np.arange(len(predictions.labels)), predictions.labels]
    return float(-np.log(np.clip(true_class, 1e-12, 1.0)).mean())


def calibration_bins(
    predictions: Predictions, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Equal-width confidence bins: how sure the model was vs how often it was right."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence, correct = predictions.confidence, ~predictions.wrong
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        rows.append(
            {
                "lower": float(edges[index]),
                "upper": float(edges[index + 1]),
                "count": count,
                "confidence": float(confidence[members].mean()) if count else 0.0,
                "accuracy": float(correct[members].mean()) if count else 0.0,
            }
        )
    return rows


def expected_calibration_error(predictions: Predictions, bins: int = CALIBRATION_BINS) -> float:
    total = len(predictions.labels)
    return float(
        sum(
            row["count"] / total * abs(row["accuracy"] - row["confidence"])
            for row in calibration_bins(predictions, bins)
        )
    )


def evaluation_metrics(predictions: Predictions) -> dict[str, Any]:
    """Everything `dvc metrics diff` should list for the test set."""
    labels, predicted = predictions.labels, predictions.predicted
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=np.arange(NUM_CLASSES), zero_division=0
    )
    return {
        "accuracy": round(float((predicted == labels).mean()), 6),
        "loss": round(cross_entropy(predictions), 6),
        "errors": int(predictions.wrong.sum()),
        "samples": len(labels),
        "macro": {
            "precision": round(float(precision.mean()), 6),
            "recall": round(float(recall.mean()), 6),
            "f1": round(float(f1.mean()), 6),
        },
        "ece": round(expected_calibration_error(predictions), 6),
        "per_class": {
            str(digit): {
                "precision": round(float(precision[digit]), 6),
                "recall": round(float(recall[digit]), 6),
                "f1": round(float(f1[digit]), 6),
                "support": int(support[digit]),
            }
            for digit in range(NUM_CLASSES)
        },
    }


def confusion_rows(predictions: Predictions) -> list[dict[str, int]]:
    """The per-sample `actual,predicted` table DVC's confusion templates read."""
    return [
        {"actual": int(actual), "predicted": int(predicted)}
        for actual, predicted in zip(predictions.labels, predictions.predicted, strict=True)
    ]
