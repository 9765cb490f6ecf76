"""What the model gets wrong: confused pairs, its mistakes, and test labels that look wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from digits import plots
from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.evaluation import Calibration, Predictions, calibration
from digits.files import write_csv
from digits.params import ErrorAnalysisParams

LABEL_ISSUE_ROWS = 100  # label_issues.csv: at least this many candidates, and every flagged one
LABEL_ISSUE_GALLERY = 50  # images in label_issues.png


def confusion_matrix(predictions: Predictions) -> np.ndarray:
    """10 x 10 int64 counts, rows the true digit, columns the predicted one."""
    digits = np.arange(NUM_CLASSES)
    return sklearn_confusion_matrix(predictions.labels, predictions.predicted, labels=digits)


@dataclass(frozen=True)
class ConfusedPair:
    """True digit `actual` read as `predicted` `count` times; `share_of_errors` in [0, 1]."""

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
    """Test-set indices (int64) of the misclassified samples, most confident mistake first."""
    wrong = np.flatnonzero(predictions.wrong)
    return wrong[np.argsort(-predictions.confidence[wrong], kind="stable")]


def mistakes_for_pair(predictions: Predictions, pair: ConfusedPair) -> np.ndarray:
    """Test-set indices (int64) of `pair`'s mistakes, most confident first."""
    ordered = mistakes_by_confidence(predictions)
    keep = (predictions.labels[ordered] == pair.actual) & (
        predictions.predicted[ordered] == pair.predicted
    )
    return ordered[keep]


@dataclass(frozen=True)
class LabelIssues:
    """Test images whose given label may be wrong, by confident learning (cleanlab).

    quality: N float, the label quality score of every test image, the probability the model
    gives its label ("self_confidence"; low = suspicious); ranked: N int64, test indices from the
    lowest quality up (ties by index); flagged: N bool, cleanlab's verdict (per-class
    thresholds from the confident joint, `filter_by="prune_by_noise_rate"`).
    Source: Northcutt, Jiang and Chuang (2021), "Confident Learning: Estimating Uncertainty in
    Dataset Labels", JAIR 70; cleanlab.filter.find_label_issues, cleanlab.rank.
    """

    quality: np.ndarray
    ranked: np.ndarray
    flagged: np.ndarray

    def candidates(self, at_least: int = LABEL_ISSUE_ROWS) -> np.ndarray:
        """The `at_least` lowest-quality test indices (int64) plus every flagged one, lowest
        first."""
        keep = np.zeros(len(self.ranked), dtype=bool)
        keep[self.ranked[:at_least]] = True
        keep |= self.flagged
        return self.ranked[keep[self.ranked]]


def label_issues(predictions: Predictions) -> LabelIssues:
    """Rank every test image by how likely its given label is wrong (see `LabelIssues`).

    The test-set probabilities are out-of-sample for the trained model, which confident learning
    needs. n_jobs=1: one process, deterministic, and the machine's cores stay with the pipeline.
    """
    labels, probabilities = predictions.labels, predictions.probabilities
    quality = get_label_quality_scores(labels, probabilities, method="self_confidence")
    flagged = find_label_issues(labels, probabilities, n_jobs=1)
    return LabelIssues(quality, np.argsort(quality, kind="stable"), flagged)


def caption(predictions: Predictions, index: int) -> str:
    predicted = int(predictions.predicted[index])
    return (
        f"#{index} true {predictions.labels[index]}\n"
        f"pred {predicted} ({predictions.probabilities[index, predicted]:.2f})"
    )


def label_issue_caption(predictions: Predictions, issues: LabelIssues, index: int) -> str:
    flag = " *" if issues.flagged[index] else ""
    return (
        f"#{index} label {predictions.labels[index]}{flag}\n"
        f"model {predictions.predicted[index]} q={issues.quality[index]:.2g}"
    )


def _curve(label: str, bins: Calibration) -> plots.ReliabilityCurve:
    return plots.ReliabilityCurve(
        label, bins.confidence.tolist(), bins.accuracy.tolist(), bins.counts.tolist()
    )


def reliability_curves(predictions: Predictions) -> tuple[list[plots.ReliabilityCurve], str]:
    """Curves before and after temperature scaling (one when the model has none), and a title."""
    after = calibration(predictions)
    if predictions.temperature == 1.0:
        title = f"Reliability on the test set (ECE {after.ece:.4f}, no temperature scaling)"
        return [_curve(f"model: ECE {after.ece:.4f}", after)], title
    before = calibration(predictions.unscaled())
    temperature = f"T = {predictions.temperature:.3f}"
    return [
        _curve(f"before scaling: ECE {before.ece:.4f}", before),
        _curve(f"after scaling ({temperature}): ECE {after.ece:.4f}", after),
    ], f"Reliability on the test set, temperature scaling with {temperature}"


@dataclass(frozen=True)
class ErrorAnalysis:
    errors: int
    pairs: list[ConfusedPair]
    label_issues: LabelIssues

    def metrics(self) -> dict[str, Any]:
        """For `metrics/error_analysis.json`: a count that keeps its key from run to run (the
        pairs, which change, live in confused_pairs.csv)."""
        return {"label_issues": int(self.label_issues.flagged.sum())}


def find_errors(predictions: Predictions, images: np.ndarray, top_pairs: int) -> ErrorAnalysis:
    """The errors, the `top_pairs` most confused pairs and cleanlab's label issues.

    `images` are the N x 28 x 28 uint8 test images in the predictions' order; raises
    DigitsError when their count differs from the predictions' (stale predictions).
    """
    if len(images) != len(predictions.labels):
        raise DigitsError(
            f"{len(predictions.labels)} predictions but {len(images)} test images: the saved "
            "predictions are stale; run `dvc repro evaluate`"
        )
    return ErrorAnalysis(
        int(predictions.wrong.sum()),
        top_confused_pairs(predictions, top_pairs),
        label_issues(predictions),
    )


def write_figures(
    found: ErrorAnalysis,
    predictions: Predictions,
    images: np.ndarray,
    params: ErrorAnalysisParams,
    figures: Path,
) -> None:
    """The PNGs under `figures`: galleries (all mistakes, the top pairs, label issues) and
    reliability before and after scaling, the pictures DVC has no template for. The confusion
    matrix and the error rate per digit are DVC plots of evaluate's tables (`dvc plots show`).

    Every run writes the same file names, whichever pairs it confuses: a name per pair would
    leave another run's pair behind after `dvc exp apply`, and `dvc plots diff` pairs images of
    two revisions by name.
    """
    mistakes = mistakes_by_confidence(predictions)
    issues = found.label_issues

    def gallery(indices: np.ndarray, name: str, title: str) -> None:
        shown = indices[: params.gallery_size]
        plots.image_gallery(
            images[shown], [caption(predictions, i) for i in shown], figures / name, title
        )

    gallery(mistakes, "misclassified.png", "Misclassified test images, most confident first")
    pair_galleries(found, predictions, images, params, figures / "confused_pairs.png")
    shown = issues.ranked[:LABEL_ISSUE_GALLERY]
    plots.image_gallery(
        images[shown],
        [label_issue_caption(predictions, issues, i) for i in shown],
        figures / "label_issues.png",
        f"Label-error candidates, lowest label quality q first; * = flagged by cleanlab "
        f"({int(issues.flagged.sum())} in all)",
    )
    curves, title = reliability_curves(predictions)
    plots.reliability_diagram(curves, figures / "reliability.png", title)


def pair_galleries(
    found: ErrorAnalysis,
    predictions: Predictions,
    images: np.ndarray,
    params: ErrorAnalysisParams,
    path: Path,
) -> None:
    """One PNG with a gallery per top confused pair, most frequent first, each titled with the
    pair and its count and showing up to `gallery_size` of its mistakes, most confident first."""
    galleries = []
    for rank, pair in enumerate(found.pairs, start=1):
        shown = mistakes_for_pair(predictions, pair)[: params.gallery_size]
        galleries.append(
            plots.Gallery(
                f"{rank}. true {pair.actual} predicted as {pair.predicted}: {pair.count} images",
                images[shown],
                [caption(predictions, i) for i in shown],
            )
        )
    plots.gallery_sections(
        galleries,
        path,
        "Most confused pairs (true as predicted), most confident mistakes first",
    )


def write_tables(found: ErrorAnalysis, predictions: Predictions, out_dir: Path) -> None:
    """`confused_pairs.csv` and `label_issues.csv` (ranked candidates) under `out_dir`."""
    issues = found.label_issues
    write_csv(
        out_dir / "confused_pairs.csv",
        [
            {"pair": f"{p.actual}->{p.predicted}", "actual": p.actual, "predicted": p.predicted,
             "count": p.count, "share_of_errors": p.share_of_errors}
            for p in found.pairs
        ],
    )  # fmt: skip
    write_csv(
        out_dir / "label_issues.csv",
        [
            {"test_index": int(i), "given_label": int(predictions.labels[i]),
             "model_label": int(predictions.predicted[i]),
             "label_quality": round(float(issues.quality[i]), 6),
             "flagged": int(issues.flagged[i])}
            for i in issues.candidates()
        ],
    )  # fmt: skip
