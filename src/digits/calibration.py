"""Temperature scaling: one scalar T that makes the model's confidence match its accuracy.

Source: Guo, Pleiss, Sun and Weinberger (2017), "On Calibration of Modern Neural Networks", ICML,
section 4.2: divide the logits z by T > 0 fitted on held-out data to minimise the negative
log-likelihood. softmax(z / T) keeps the argmax of softmax(z), so accuracy cannot change.

The calibrated model ends in Dense "logits" (linear) -> TemperatureScaling "temperature" ->
Softmax "probabilities", so it saves as `.keras`, exports like any model, and carries its own T
(`temperature_of`): evaluate recovers the unscaled probabilities from it (see
`digits.evaluation.Predictions.unscaled`). `TemperatureScaling` lives in `digits.model` with the
other layers saved models contain, so `load_model` reads calibrated models everywhere.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import layers
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import log_loss

from digits.data import NUM_CLASSES
from digits.errors import DigitsError
from digits.model import TemperatureScaling, check_temperature

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
    rows = np.arange(len(labels))

    def nll(log_temperature: float) -> float:
        return float(-log_softmax(logits / math.exp(log_temperature), axis=1)[rows, labels].mean())

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    if not result.success or min(result.x - low, high - result.x) < 1e-3:
        raise DigitsError(
            f"fit_temperature: the NLL has no minimum for T in {TEMPERATURE_BOUNDS} (best "
            f"T = {math.exp(result.x):.4g}); the held-out set is too small or all correct: "
            "fit on more held-out images"
        )
    return math.exp(result.x)


def _logits_tensor(model: keras.Model) -> Any:
    """The symbolic pre-softmax logits of `model`, unscaled by any temperature it carries."""
    last = model.layers[-1]
    before = model.layers[-2] if len(model.layers) > 1 else None
    if (
        isinstance(last, layers.Softmax)
        and isinstance(before, TemperatureScaling)
        and last.input is before.output
    ):
        return before.input
    if isinstance(last, layers.Dense) and last.activation is keras.activations.softmax:
        linear = layers.Dense(last.units, name="logits")
        outputs = linear(last.input)
        linear.set_weights(last.get_weights())
        return outputs
    raise DigitsError(
        f"model {model.name!r} does not end in a softmax Dense layer or temperature scaling "
        f"(last layer: {last.name!r}, {type(last).__name__}); build it with digits.model"
    )


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """A model with the same input that outputs softmax(logits / temperature), N x 10 float32.

    `model` ends in `Dense(10, activation="softmax")` (see `digits.model.build_model`) or is
    itself a calibrated model (its temperature is then replaced, not compounded). The new model
    shares every layer of `model` but the last softmax Dense, whose weights it copies into a
    linear Dense; its argmax equals `model`'s.
    Raises DigitsError for a temperature that is not finite and > 0, or another model shape.
    """
    scaling = TemperatureScaling(check_temperature(temperature), name="temperature")
    outputs = layers.Softmax(name="probabilities")(scaling(_logits_tensor(model)))
    return keras.Model(model.input, outputs, name=model.name)


def temperature_of(model: keras.Model) -> float:
    """The temperature a model divides its logits by: 1.0 for a model without scaling.

    Raises DigitsError for a model with more than one temperature layer.
    """
    found = [layer.temperature for layer in model.layers if isinstance(layer, TemperatureScaling)]
    if len(found) > 1:
        raise DigitsError(f"model {model.name!r} has {len(found)} temperature layers, expected 1")
    return found[0] if found else 1.0


def logits(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Pre-softmax, unscaled logits N x 10 float32 of `model` on images N x 28 x 28 uint8.

    What `fit_temperature` takes: run it on held-out images of the uncalibrated model. Raises
    DigitsError for a model that ends in neither a softmax Dense layer nor temperature scaling.
    """
    logits_model = keras.Model(model.input, _logits_tensor(model))
    return np.asarray(logits_model.predict(images, batch_size=batch_size, verbose=0), np.float32)


def scaled_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of softmax(logits / temperature): logits N x 10
    float, labels N int in 0..9 (scikit-learn's `log_loss`)."""
    probabilities = softmax(np.asarray(logits, np.float64) / temperature, axis=1)
    return float(log_loss(labels, probabilities, labels=np.arange(NUM_CLASSES)))
