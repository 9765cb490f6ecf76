"""Temperature scaling: one scalar T that makes the model's confidence match its accuracy.

Source: Guo, Pleiss, Sun and Weinberger (2017), "On Calibration of Modern Neural Networks", ICML,
section 4.2: divide the logits z by T > 0 fitted on held-out data to minimise the negative
log-likelihood. softmax(z / T) keeps the argmax of softmax(z), so accuracy cannot change.

The network (`digits.model.build_model`) outputs its logits; the published model is that
network -> TemperatureScaling "temperature" -> Softmax "probabilities"
(`digits.model.probability_model`), so it saves as `.keras`, exports like any model, and carries
its own T (`temperature_of`): evaluate recovers the unscaled probabilities from it (see
`digits.evaluation.Predictions.unscaled`). The NLL minimised here is `digits.scores.nll`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from scipy.optimize import OptimizeResult, minimize_scalar
from scipy.special import softmax

from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.model import TemperatureScaling, logits_output
from digits.scores import nll

# The search range of T. A fit at either end means the NLL has no interior minimum, and that T
# would not generalise.
TEMPERATURE_BOUNDS = (0.01, 100.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) on (logits, labels).

    logits: N x 10 float, pre-softmax outputs on held-out images (not the training set);
    labels: N int in 0..9. Minimises over log T (so T stays positive) with scipy's bounded
    Brent search within `TEMPERATURE_BOUNDS`. T > 1 softens over-confident predictions, T < 1
    sharpens under-confident ones (e.g. after label smoothing).

    Raises DigitsError on malformed inputs, or when the NLL has no minimum inside the bounds:
    with every image right it falls without end as T -> 0; a model worse than chance can make
    it fall as T grows.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES or len(logits) == 0:
        raise DigitsError(f"fit_temperature: expected N x {NUM_CLASSES} logits, got {logits.shape}")
    if labels.shape != (len(logits),) or not np.issubdtype(labels.dtype, np.integer):
        raise DigitsError(
            f"fit_temperature: expected {len(logits)} integer labels, got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DigitsError(f"fit_temperature: labels must be in 0..{NUM_CLASSES - 1}")
    if not np.isfinite(logits).all():
        raise DigitsError("fit_temperature: logits contain NaN or infinity")
    if (logits.argmax(axis=1) == labels).all():
        raise DigitsError(
            f"fit_temperature: all {len(labels)} held-out images are right, so the NLL keeps "
            "falling as T -> 0 and has no minimum: fit on more held-out images"
        )

    result = _minimise_over_temperature(logits, labels)
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    if not result.success or min(result.x - low, high - result.x) < 1e-3:
        raise DigitsError(
            f"fit_temperature: the NLL has no minimum for T in {TEMPERATURE_BOUNDS} (best "
            f"T = {math.exp(result.x):.4g}); the held-out set is too small or all correct: "
            "fit on more held-out images"
        )
    return math.exp(result.x)


def _minimise_over_temperature(logits: np.ndarray, labels: np.ndarray) -> OptimizeResult:
    """scipy's bounded Brent search of log T within `TEMPERATURE_BOUNDS` for the lowest mean NLL
    of softmax(logits / T): `x` is log T, `fun` the NLL (nats per image)."""

    def objective(log_temperature: float) -> float:
        return scaled_nll(logits, labels, math.exp(log_temperature))

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    return minimize_scalar(objective, bounds=(low, high), method="bounded", options={"xatol": 1e-6})


def lowest_scaled_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean NLL (nats per image) of softmax(logits / T) at the best T in
    `TEMPERATURE_BOUNDS`: what a search trial scores. Unlike `fit_temperature` it never refuses
    a model: one without an interior minimum gets the NLL at the bound, and logits that are not
    finite (a diverged run) get log(10), the NLL of a uniform guess.

    logits: N x 10 float; labels: N int in 0..9.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(logits).all():
        return math.log(NUM_CLASSES)
    return min(float(_minimise_over_temperature(logits, labels).fun), math.log(NUM_CLASSES))


def temperature_of(model: keras.Model) -> float:
    """The temperature a model divides its logits by: 1.0 for a model without scaling.

    Raises DigitsError for a model with more than one temperature layer.
    """
    found = [layer.temperature for layer in model.layers if isinstance(layer, TemperatureScaling)]
    if len(found) > 1:
        raise DigitsError(f"model {model.name!r} has {len(found)} temperature layers, expected 1")
    return found[0] if found else 1.0


def logits(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Pre-softmax, unscaled logits N x 10 float32 of `model` on images N x 28 x 28 uint8: the
    output of its `logits` layer, which every network and published model has.

    What `fit_temperature` takes: run it on held-out images. Raises DigitsError for a model
    without a logits layer (see `digits.model.logits_output`).
    """
    logits_model = keras.Model(model.input, logits_output(model))
    return np.asarray(logits_model.predict(images, batch_size=batch_size, verbose=0), np.float32)


def scaled_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of softmax(logits / temperature) (`digits.evaluation
    .nll`): logits N x 10 float, labels N int in 0..9, temperature > 0."""
    return nll(labels, softmax(np.asarray(logits, np.float64) / temperature, axis=1))
