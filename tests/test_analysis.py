"""Evaluation and error analysis on hand-made predictions with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits.analysis import (
    confusion_matrix,
    mistakes_by_confidence,
    per_class_error_rate,
    suspected_label_errors,
    top_confused_pairs,
    write_error_analysis,
)
from digits.evaluation import Predictions, evaluation_metrics, expected_calibration_error
from digits.params import ErrorAnalysisParams


def one_hot_probabilities(predicted: list[int], confidence: list[float]) -> np.ndarray:
    """Each row puts `confidence` on its predicted class and spreads the rest evenly."""
    rows = np.zeros((len(predicted), 10))
    for row, (digit, sure) in enumerate(zip(predicted, confidence, strict=True)):
        rows[row, :] = (1 - sure) / 9
        rows[row, digit] = sure
    return rows


@pytest.fixture()
def predictions() -> Predictions:
    labels = [4, 4, 4, 7, 7, 9, 1, 2, 3, 5]
    predicted = [9, 9, 4, 1, 7, 9, 1, 2, 3, 3]
    confidence = [0.97, 0.6, 0.9, 0.8, 0.9, 0.99, 1.0, 0.9, 0.9, 0.55]
    return Predictions(one_hot_probabilities(predicted, confidence), np.array(labels))


def test_confusion_counts(predictions: Predictions) -> None:
    matrix = confusion_matrix(predictions)
    assert matrix[4, 9] == 2
    assert matrix[7, 1] == 1
    assert matrix.trace() == 6
    assert matrix.sum() == 10


def test_top_confused_pair(predictions: Predictions) -> None:
    pairs = top_confused_pairs(predictions, top=2)
    assert (pairs[0].actual, pairs[0].predicted, pairs[0].count) == (4, 9, 2)
    assert pairs[0].share_of_errors == 0.5
    assert (pairs[1].actual, pairs[1].predicted) == (5, 3)  # ties: lowest digits first


def test_mistakes_are_ordered_by_confidence_and_suspects_pass_the_threshold(
    predictions: Predictions,
) -> None:
    assert mistakes_by_confidence(predictions).tolist() == [0, 3, 1, 9]
    assert suspected_label_errors(predictions, threshold=0.95).tolist() == [0]


def test_calibration_error_is_known() -> None:
    # Two bins: 4 samples at confidence 0.9 (3 right), 4 at 0.6 (all right).
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = [0, 0, 0, 1, 1, 1, 1, 1]
    confidence = [0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.6, 0.6]
    predictions = Predictions(one_hot_probabilities(predicted, confidence), labels)
    expected = 0.5 * abs(0.75 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(predictions) == pytest.approx(expected)


def test_metrics_and_error_rates(predictions: Predictions) -> None:
    metrics = evaluation_metrics(predictions)
    assert metrics["accuracy"] == 0.6
    assert metrics["errors"] == 4
    assert metrics["per_class"]["4"]["recall"] == pytest.approx(1 / 3, abs=1e-6)
    assert per_class_error_rate(predictions)[7] == 0.5


def test_the_report_writes_every_figure(predictions: Predictions, tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (10, 28, 28), dtype=np.uint8)
    params = ErrorAnalysisParams(gallery_size=4, top_pairs=2, suspect_confidence=0.95)
    metrics = write_error_analysis(predictions, images, params, tmp_path)
    assert metrics["top_pairs"]["4_as_9"] == {"count": 2, "share_of_errors": 0.5}
    assert metrics["suspected_label_errors"] == 1
    figures = sorted(path.name for path in (tmp_path / "images").iterdir())
    assert figures == [
        "confusion_matrix.png", "misclassified.png", "pair_4_as_9.png", "pair_5_as_3.png",
        "per_class_error_rate.png", "reliability.png", "suspected_label_errors.png",
    ]  # fmt: skip
    assert (tmp_path / "suspected_label_errors.csv").read_text().splitlines()[1] == "0,4,9,0.97"
