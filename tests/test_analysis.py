"""Evaluation and error analysis on hand-made predictions with known answers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from digits.analysis import (
    confusion_matrix,
    find_errors,
    label_issues,
    mistakes_by_confidence,
    reliability_curves,
    top_confused_pairs,
    write_figures,
    write_tables,
)
from digits.data import Split
from digits.errors import DigitsError
from digits.evaluation import (
    Predictions,
    accuracy_interval,
    calibration,
    evaluation_metrics,
    load_predictions,
    per_class_rows,
    per_class_scores,
    probability_scores,
    save_predictions,
)
from digits.params import ErrorAnalysisParams
from digits.scores import brier, nll
from tests.helpers import assert_says


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


def test_mistakes_are_ordered_by_confidence(predictions: Predictions) -> None:
    assert mistakes_by_confidence(predictions).tolist() == [0, 3, 1, 9]


def test_calibration_error_is_known() -> None:
    # Two bins: 4 samples at confidence 0.9 (3 right), 4 at 0.6 (all right).
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = [0, 0, 0, 1, 1, 1, 1, 1]
    confidence = [0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.6, 0.6]
    predictions = Predictions(one_hot_probabilities(predicted, confidence), labels)
    expected = 0.5 * abs(0.75 - 0.9) + 0.5 * abs(1.0 - 0.6)
    bins = calibration(predictions)
    assert bins.ece == pytest.approx(expected)
    assert bins.counts.tolist() == [4, 4]
    assert bins.accuracy.tolist() == [1.0, 0.75]
    assert bins.confidence == pytest.approx([0.6, 0.9])


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin() -> None:
    # Guo et al.'s bins are ((m - 1) / M, m / M]: 0.6 closes bin 9 of 15 (0.5333, 0.6].
    predictions = Predictions(one_hot_probabilities([0, 0], [0.6, 0.6 + 1e-9]), np.array([0, 1]))
    bins = calibration(predictions)
    assert bins.counts.tolist() == [1, 1]
    assert bins.accuracy.tolist() == [1.0, 0.0]
    assert bins.ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.6)


def test_nll_and_brier_are_known() -> None:
    # Sample 0: right with 0.9 on its digit; sample 1: wrong, 0.6 on digit 1, label 0 at 0.4/9.
    predictions = Predictions(one_hot_probabilities([0, 1], [0.9, 0.6]), np.array([0, 0]))
    scores = probability_scores(predictions)
    assert scores["nll"] == pytest.approx((-math.log(0.9) - math.log(0.4 / 9)) / 2)
    brier_right = (1 - 0.9) ** 2 + 9 * (0.1 / 9) ** 2
    brier_wrong = (1 - 0.4 / 9) ** 2 + 0.6**2 + 8 * (0.4 / 9) ** 2
    assert scores["brier"] == pytest.approx((brier_right + brier_wrong) / 2)
    # float32 rows (what the model outputs) sum to 1 only within float32's rounding: still read.
    rows = predictions.probabilities.astype(np.float32) * np.float32(1 + 3e-7)
    assert nll(predictions.labels, rows) == pytest.approx(scores["nll"], rel=1e-6)
    assert brier(predictions.labels, rows) == pytest.approx(scores["brier"], rel=1e-6)


def test_clopper_pearson_interval_matches_its_closed_form_at_the_extremes() -> None:
    # All n right: the exact interval is [(alpha/2)^(1/n), 1]; none: [0, 1 - (alpha/2)^(1/n)].
    assert accuracy_interval(50, 50) == pytest.approx((0.025 ** (1 / 50), 1.0))
    assert accuracy_interval(0, 50) == pytest.approx((0.0, 1 - 0.025 ** (1 / 50)))
    low, high = accuracy_interval(9965, 10_000)
    assert low < 0.9965 < high and high - low == pytest.approx(0.00243, abs=1e-4)


def test_unscaled_probabilities_are_exactly_those_before_temperature_scaling(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (500, 10))
    labels = rng.integers(0, 10, 500)
    scaled = Predictions(softmax(logits / 0.4, axis=1).astype(np.float32), labels, 0.4)
    save_predictions(scaled, tmp_path / "test.npz")
    loaded = load_predictions(tmp_path / "test.npz")
    assert loaded.temperature == 0.4
    unscaled = loaded.unscaled()
    np.testing.assert_allclose(unscaled.probabilities, softmax(logits, axis=1), atol=1e-6)
    np.testing.assert_array_equal(unscaled.predicted, scaled.predicted)
    assert unscaled.temperature == 1.0


def test_metrics_come_flat_headline_first_with_before_and_after_scaling(
    predictions: Predictions,
) -> None:
    metrics = evaluation_metrics(predictions)
    assert list(metrics)[:6] == [
        "accuracy", "accuracy_ci_low", "accuracy_ci_high", "errors", "samples", "temperature",
    ]  # fmt: skip
    assert all(isinstance(value, int | float) for value in metrics.values())
    assert metrics["accuracy"] == 0.6
    assert metrics["errors"] == 4
    assert metrics["accuracy_ci_low"] < 0.6 < metrics["accuracy_ci_high"]
    # No temperature: the scores before and after scaling are the same numbers.
    assert metrics["temperature"] == 1.0
    for name in ("ece", "nll", "brier"):
        assert metrics[f"{name}_unscaled"] == metrics[name]
    with np.errstate(divide="ignore"):  # one row is exactly one-hot
        log_p = np.log(predictions.probabilities)
    sharpened = Predictions(softmax(log_p / 0.5, axis=1), predictions.labels, 0.5)
    metrics = evaluation_metrics(sharpened)
    assert metrics["temperature"] == 0.5
    assert metrics["nll_unscaled"] == pytest.approx(evaluation_metrics(predictions)["nll"])
    assert metrics["nll"] != pytest.approx(metrics["nll_unscaled"])


def test_per_class_rows_and_error_rates(predictions: Predictions) -> None:
    rows = per_class_rows(predictions)
    assert [row["digit"] for row in rows] == list(range(10))
    assert rows[4]["recall"] == pytest.approx(1 / 3, abs=1e-6)
    assert rows[4]["error_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows[4]["support"] == 3
    error_rate = per_class_scores(predictions)["error_rate"]
    assert error_rate[7] == 0.5
    assert np.isnan(error_rate[0])  # no 0 in the labels: undefined, not 0


def test_label_issues_finds_the_flipped_labels() -> None:
    """30 images per digit, predicted right at 0.91, and three labels changed; the model is only
    0.6 sure of one of those, under its digit's threshold: ranked low, but not flagged."""
    true = np.repeat(np.arange(10), 30)
    labels = true.copy()
    flipped = {17: 5, 95: 2, 260: 4}
    for index, wrong_label in flipped.items():
        labels[index] = wrong_label
    probabilities = one_hot_probabilities(true.tolist(), [0.91] * len(true))
    probabilities[95] = one_hot_probabilities([true[95]], [0.6])[0]  # less sure of this one
    issues = label_issues(Predictions(probabilities, labels))
    assert np.flatnonzero(issues.flagged).tolist() == [17, 260]
    assert issues.ranked[:3].tolist() == [17, 260, 95]  # quality 0.01, 0.01, then 0.4/9
    assert issues.quality[17] == pytest.approx(0.01)
    assert issues.candidates(at_least=1).tolist() == [17, 260]  # every flagged one
    assert issues.candidates(at_least=3).tolist() == [17, 260, 95]


def test_the_reliability_diagram_shows_before_and_after_scaling() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (2000, 10))
    labels = rng.integers(0, 10, 2000)
    scaled = Predictions(softmax(logits / 2, axis=1).astype(np.float32), labels, 2.0)
    curves, title = reliability_curves(scaled)
    before, after = calibration(scaled.unscaled()), calibration(scaled)
    assert [curve.label for curve in curves] == [
        f"before scaling: ECE {before.ece:.4f}",
        f"after scaling (T = 2.000): ECE {after.ece:.4f}",
    ]
    assert curves[0].counts == before.counts.tolist() and sum(curves[1].counts) == 2000
    assert "T = 2.000" in title
    unscaled_curves, _ = reliability_curves(scaled.unscaled())
    assert len(unscaled_curves) == 1  # no temperature: one curve


def test_stale_predictions_are_one_error(predictions: Predictions) -> None:
    with pytest.raises(DigitsError) as error:
        find_errors(predictions, np.zeros((3, 28, 28), np.uint8), top_pairs=2)
    assert_says(
        str(error.value), f"{len(predictions.labels)} predictions", "3", "stale",
        "`dvc repro evaluate`",
    )  # fmt: skip


def test_the_report_writes_every_figure(predictions: Predictions, tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (10, 28, 28), dtype=np.uint8)
    params = ErrorAnalysisParams(gallery_size=4, top_pairs=2)
    found = find_errors(predictions, images, params.top_pairs)
    write_figures(found, predictions, images, params, tmp_path / "images")
    write_tables(found, predictions, tmp_path)
    assert found.errors == 4
    assert found.metrics() == {"label_issues": int(found.label_issues.flagged.sum())}
    json.dumps(found.metrics())  # plain ints: what write_json needs
    figures = sorted(path.name for path in (tmp_path / "images").iterdir())
    assert figures == [
        "confused_pairs.png", "label_issues.png", "misclassified.png", "reliability.png",
    ]  # fmt: skip
    pairs = (tmp_path / "confused_pairs.csv").read_text().splitlines()
    assert pairs[:2] == ["pair,actual,predicted,count,share_of_errors", "4->9,4,9,2,0.5"]
    with (tmp_path / "label_issues.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 10  # fewer than 100 images: every one, lowest label quality first
    # Image 0: label 4, predicted 9 with 0.97, so p(label) = 0.03 / 9, the lowest of all.
    assert rows[0] == {
        "test_index": "0", "given_label": "4", "model_label": "9", "label_quality": "0.003333",
        "flagged": str(int(found.label_issues.flagged[0])),
    }  # fmt: skip
    qualities = [float(row["label_quality"]) for row in rows]
    assert qualities == sorted(qualities)


@pytest.mark.parametrize("top_pairs", [1, 90])
def test_runs_with_other_confusions_write_the_same_files(
    tmp_path: Path, top_pairs: int, tiny_splits: dict[str, Split]
) -> None:
    """After `dvc exp apply`, no file of another run's confusions is left behind, and `dvc plots
    diff` pairs the two revisions' images by name: none, one and many confused pairs."""
    test = tiny_splits["test"]
    labels = test.labels.astype(np.int64)
    params = ErrorAnalysisParams(gallery_size=3, top_pairs=top_pairs)
    runs = {
        "no errors": labels,
        "3 read as 8": np.where(labels == 3, 8, labels),
        "every digit shifted": np.where(np.arange(len(labels)) % 4 == 0, (labels + 1) % 10, labels),
    }
    written = {}
    for name, predicted in runs.items():
        predictions = Predictions(one_hot_probabilities(list(predicted), [0.9] * len(labels)),
                                  labels)  # fmt: skip
        found = find_errors(predictions, test.images, params.top_pairs)
        folder = tmp_path / name.replace(" ", "_")
        write_figures(found, predictions, test.images, params, folder)
        written[name] = sorted(path.name for path in folder.iterdir())
    assert written["no errors"] == written["3 read as 8"] == written["every digit shifted"]
    assert "confused_pairs.png" in written["no errors"]
