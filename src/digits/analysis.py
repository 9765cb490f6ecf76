"""What the model gets wrong: confused pairs, confident mistakes, suspected label errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from digits import plots
from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.evaluation import (
    Predictions,
    calibration_bins,
    expected_calibration_error,
)
from digits.files import write_csv
from digits.params import ErrorAnalysisParams


def confusion_matrix(predictions: Predictions) -> np.ndarray:
    """10 x 10 counts, rows the true digit, columns the predicted one."""
    digits = np.arange(NUM_CLASSES)
    return sklearn_confusion_matrix(predictions.labels, predictions.predicted, labels=digits)


@dataclass(frozen=True)
class ConfusedPair:
    actual: int
    predicted: int
    count: int
    share_of_errors: float


def top_confused_pairs(predictions: Predictions, top: int) -> list[ConfusedPair]:
    """Off-diagonal cells by count (ties broken by digit order), with their share of all errors."""
    matrix = confusion_matrix(predictions)
    np.fill_diagonal(matrix, 0)
    total = int(matrix.sum())
    digits = range(NUM_CLASSES)
    cells = [(int(matrix[a, p]), a, p) for a in digits for p in digits if matrix[a, p]]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [
        ConfusedPair(actual=a, predicted=p, count=count, share_of_errors=round(count / total, 4))
        for count, a, p in cells[:top]
    ]


def mistakes_by_confidence(predictions: Predictions) -> np.ndarray:
    """Test-set indices of the misclassified samples, most confident mistake first."""
    wrong = np.flatnonzero(predictions.wrong)
    return wrong[np.argsort(-predictions.confidence[wrong], kind="stable")]


def mistakes_for_pair(predictions: Predictions, pair: ConfusedPair) -> np.ndarray:
    ordered = mistakes_by_confidence(predictions)
    keep = (predictions.labels[ordered] == pair.actual) & (
        predictions.predicted[ordered] == pair.predicted
    )
    return ordered[keep]


def suspected_label_errors(predictions: Predictions, threshold: float) -> np.ndarray:
    """Mistakes made with confidence >= threshold: often the label, not the model, is wrong."""
    ordered = mistakes_by_confidence(predictions)
    return ordered[predictions.confidence[ordered] >= threshold]


def per_class_error_rate(predictions: Predictions) -> np.ndarray:
    """Share of each true digit's test images that the model gets wrong."""
    errors = np.bincount(predictions.labels[predictions.wrong], minlength=NUM_CLASSES)
    support = np.bincount(predictions.labels, minlength=NUM_CLASSES)
    return np.divide(errors, support, out=np.zeros(NUM_CLASSES), where=support > 0)


def caption(predictions: Predictions, index: int) -> str:
    predicted = int(predictions.predicted[index])
    return (
        f"#{index} true {predictions.labels[index]}\n"
        f"pred {predicted} ({predictions.probabilities[index, predicted]:.2f})"
    )


def write_error_analysis(
    predictions: Predictions, images: np.ndarray, params: ErrorAnalysisParams, out_dir: Path
) -> dict[str, Any]:
    """Write the figures and tables under `out_dir`; return the metrics to record."""
    if len(images) != len(predictions.labels):
        raise DigitsError(
            f"{len(predictions.labels)} predictions but {len(images)} test images: the saved "
            "predictions are stale; run `dvc repro evaluate`"
        )
    figures = out_dir / "images"
    pairs = top_confused_pairs(predictions, params.top_pairs)
    mistakes = mistakes_by_confidence(predictions)
    suspects = suspected_label_errors(predictions, params.suspect_confidence)

    def gallery(indices: np.ndarray, name: str, title: str) -> None:
        shown = indices[: params.gallery_size]
        plots.image_gallery(
            images[shown], [caption(predictions, i) for i in shown], figures / name, title
        )

    plots.confusion_heatmap(
        confusion_matrix(predictions),
        figures / "confusion_matrix.png",
        f"Test confusion matrix: {len(mistakes)} errors in {len(predictions.labels):,} images",
    )
    gallery(mistakes, "misclassified.png", "Misclassified test images, most confident first")
    gallery(
        suspects,
        "suspected_label_errors.png",
        f"Suspected label errors: wrong with confidence >= {params.suspect_confidence}",
    )
    for pair in pairs:
        gallery(
            mistakes_for_pair(predictions, pair),
            f"pair_{pair.actual}_as_{pair.predicted}.png",
            f"True {pair.actual} predicted as {pair.predicted}: {pair.count} images",
        )
    bins = calibration_bins(predictions)
    plots.reliability_diagram(
        [row["confidence"] for row in bins],
        [row["accuracy"] for row in bins],
        [row["count"] for row in bins],
        figures / "reliability.png",
        expected_calibration_error(predictions),
    )
    plots.per_class_error_bars(
        per_class_error_rate(predictions), figures / "per_class_error_rate.png"
    )

    write_csv(
        out_dir / "confused_pairs.csv",
        [
            {"pair": f"{p.actual}->{p.predicted}", "actual": p.actual, "predicted": p.predicted,
             "count": p.count, "share_of_errors": p.share_of_errors}
            for p in pairs
        ],
    )  # fmt: skip
    write_csv(
        out_dir / "suspected_label_errors.csv",
        [
            {"test_index": int(i), "label": int(predictions.labels[i]),
             "predicted": int(predictions.predicted[i]),
             "confidence": round(float(predictions.confidence[i]), 4)}
            for i in suspects
        ],
    )  # fmt: skip
    return {
        "errors": len(mistakes),
        "suspected_label_errors": len(suspects),
        "top_pairs": {
            f"{p.actual}_as_{p.predicted}": {"count": p.count, "share_of_errors": p.share_of_errors}
            for p in pairs
        },
    }
