"""Score the trained model on the test set, once, and keep its predicted probabilities.

error_analysis works from the saved probabilities and never reruns the model. The ECE
(`calibration`) is computed here; NLL and Brier score in `digits.scores`, which the temperature
fit shares without depending on this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, precision_recall_fscore_support
from statsmodels.stats.proportion import proportion_confint

from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.files import atomic_path, read_npz
from digits.scores import DIGITS, brier, nll

CALIBRATION_BINS = 15  # as Guo et al. (2017) report ECE, so the figures compare with theirs
CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class Predictions:
    """The test set as the published model saw it.

    probabilities: N x 10 float32, the model's output, i.e. after temperature scaling when the
    model carries a temperature (`digits.calibration`); labels: N integer true digits (uint8 from
    the prepared split); temperature: the T the model divides its logits by (1.0: no scaling).
    From them: `predicted` N int64 digits, `confidence` N float32 top probabilities, `wrong` N
    bool.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    temperature: float = 1.0

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def wrong(self) -> np.ndarray:
        return self.predicted != self.labels

    def unscaled(self) -> Predictions:
        """The same predictions before temperature scaling, softmax(logits), from p and T alone.

        Exact: p = softmax(z / T) gives log p = z / T - logsumexp(z / T), so T log p = z - c per
        row, and softmax is unchanged by a per-row constant: softmax(T log p) = softmax(z). Up to
        float32 rounding of p; a probability that underflowed to 0 stays 0.
        """
        if self.temperature == 1.0:
            return self
        with np.errstate(divide="ignore"):
            log_p = np.log(self.probabilities.astype(np.float64))
        unscaled = softmax(self.temperature * log_p, axis=1).astype(np.float32)
        return Predictions(unscaled, self.labels, 1.0)


def save_predictions(predictions: Predictions, path: Path) -> None:
    with atomic_path(path, verify=load_predictions) as temporary:
        np.savez_compressed(
            temporary,
            probabilities=predictions.probabilities,
            labels=predictions.labels,
            temperature=np.float64(predictions.temperature),
        )


def load_predictions(path: Path | str) -> Predictions:
    """Read what `save_predictions` wrote; raises DigitsError, saying to run `dvc repro evaluate`,
    when the file is missing or unreadable, or its probabilities are not N x 10 for N labels."""
    fix = "run `dvc repro evaluate` to regenerate it"
    probabilities, labels, temperature = read_npz(
        path, ("probabilities", "labels", "temperature"), fix
    )
    if probabilities.ndim != 2 or probabilities.shape != (len(labels), NUM_CLASSES):
        raise DigitsError(
            f"{path}: expected N x 10 probabilities, got {probabilities.shape}: {fix}"
        )
    return Predictions(probabilities, labels, float(temperature))


@dataclass(frozen=True)
class Calibration:
    """Top-label reliability in equal-width confidence bins, non-empty bins only.

    accuracy, confidence: B float64, per bin the share of right answers and the mean top-class
    probability; counts: B int64, images per bin; ece: the expected calibration error,
    sum over bins of counts / N * |accuracy - confidence| (Guo et al. 2017, eq. 3; Naeini et al.
    2015), in [0, 1].
    """

    accuracy: np.ndarray
    confidence: np.ndarray
    counts: np.ndarray
    ece: float


def calibration(predictions: Predictions, bins: int = CALIBRATION_BINS) -> Calibration:
    """`bins` equal-width bins of the top-class probability over [0, 1] and the ECE over them.

    Bin m holds the confidences in ((m - 1) / bins, m / bins] (the first also holds 0), as in
    Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML, eq. 3, after Naeini,
    Cooper and Hauskrecht (2015), "Obtaining Well Calibrated Probabilities Using Bayesian
    Binning", AAAI; 15 bins as Guo et al. report it. scikit-learn has no ECE, hence by hand.
    """
    confidence, correct = predictions.confidence.astype(np.float64), ~predictions.wrong
    index = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], confidence)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    accuracy = np.bincount(index, weights=correct, minlength=bins)[filled] / counts[filled]
    mean_confidence = (
        np.bincount(index, weights=confidence, minlength=bins)[filled] / counts[filled]
    )
    counts = counts[filled]
    ece = float(np.sum(counts / counts.sum() * np.abs(accuracy - mean_confidence)))
    return Calibration(accuracy, mean_confidence, counts, ece)


def probability_scores(predictions: Predictions) -> dict[str, float]:
    """ECE (`calibration`), NLL (`nll`) and Brier score (`brier`) of the predicted
    probabilities."""
    labels, probabilities = predictions.labels, predictions.probabilities
    return {
        "ece": calibration(predictions).ece,
        "nll": nll(labels, probabilities),
        "brier": brier(labels, probabilities),
    }


def accuracy_interval(
    correct: int, total: int, level: float = CONFIDENCE_LEVEL
) -> tuple[float, float]:
    """Exact two-sided interval (low, high), in [0, 1], for the accuracy `correct / total`.

    Clopper and Pearson (1934), Biometrika 26, via statsmodels' `proportion_confint(method="beta")`.
    """
    low, high = proportion_confint(correct, total, alpha=1 - level, method="beta")
    return float(low), float(high)


def per_class_scores(predictions: Predictions) -> dict[str, np.ndarray]:
    """Per digit 0-9: precision, recall, f1, error_rate (= 1 - recall), each 10 float64, and
    support, 10 int64.

    A digit absent from the labels (or never predicted, for precision) gets NaN, not 0.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.labels, predictions.predicted, labels=DIGITS, zero_division=np.nan
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "error_rate": 1 - recall,
    }


def evaluation_metrics(predictions: Predictions) -> dict[str, Any]:
    """The headline figures for `metrics/evaluate.json`, most important first.

    accuracy with its exact 95% interval (accuracy_ci_low/high), errors, samples; the
    temperature of the published model, then ece, nll, brier of its probabilities and the same
    before temperature scaling (*_unscaled); macro_f1. Per-digit detail goes to `per_class_rows`.
    Raises DigitsError when there are no test images.
    """
    samples, errors = len(predictions.labels), int(predictions.wrong.sum())
    if samples == 0:
        raise DigitsError("no test images to evaluate: check prepare.test_subsample")
    low, high = accuracy_interval(samples - errors, samples)
    scaled, unscaled = probability_scores(predictions), probability_scores(predictions.unscaled())
    metrics: dict[str, Any] = {
        "accuracy": round((samples - errors) / samples, 6),
        "accuracy_ci_low": round(low, 6),
        "accuracy_ci_high": round(high, 6),
        "errors": errors,
        "samples": samples,
        "temperature": round(predictions.temperature, 6),
    }
    metrics.update({name: round(value, 6) for name, value in scaled.items()})
    metrics.update({f"{name}_unscaled": round(value, 6) for name, value in unscaled.items()})
    macro_f1 = f1_score(
        predictions.labels, predictions.predicted, average="macro", zero_division=0.0
    )
    metrics["macro_f1"] = round(float(macro_f1), 6)
    return metrics


def per_class_rows(predictions: Predictions) -> list[dict[str, Any]]:
    """One row per digit for `plots/evaluate/per_class.csv` (a DVC plot, diffable by revision)."""
    scores = per_class_scores(predictions)
    return [
        {
            "digit": int(digit),
            "support": int(scores["support"][digit]),
            "error_rate": round(float(scores["error_rate"][digit]), 6),
            "precision": round(float(scores["precision"][digit]), 6),
            "recall": round(float(scores["recall"][digit]), 6),
            "f1": round(float(scores["f1"][digit]), 6),
        }
        for digit in DIGITS
    ]


def confusion_rows(predictions: Predictions) -> list[dict[str, int]]:
    """The per-sample `actual,predicted` table DVC's confusion templates read, in test order."""
    return [
        {"actual": int(actual), "predicted": int(predicted)}
        for actual, predicted in zip(predictions.labels, predictions.predicted, strict=True)
    ]
