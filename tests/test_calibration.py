"""Temperature scaling: the fit on logits with a known temperature, and the calibrated Keras model
(the network's logits -> temperature -> softmax: same argmax, saved and loaded as .keras, exported
to SavedModel and TFLite) on real MNIST."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import log_loss

from digits.calibration import fit_temperature, logits, scaled_nll, temperature_of
from digits.data import Split
from digits.errors import DigitsError
from digits.evaluation import Predictions
from digits.export import export_all
from digits.hyperparameters import Hyperparameters
from digits.mnist import Mnist
from digits.model import build_model, load_model, probability_model
from digits.scores import nll
from tests.helpers import assert_says

SMALL = Hyperparameters(
    conv_blocks=2, convs_per_block=1, base_filters=8, first_kernel_size=3, kernel_size=3,
    batch_norm=True, dropout=0.1, dense_units=32, learning_rate=0.003,
)  # fmt: skip


def sampled_labels(logits: np.ndarray, seed: int) -> np.ndarray:
    """One label per row drawn from softmax(logits): data for which these logits are calibrated."""
    cumulative = softmax(logits, axis=1).cumsum(axis=1)
    draws = np.random.default_rng(seed).random((len(logits), 1))
    return np.minimum((cumulative < draws).sum(axis=1), logits.shape[1] - 1)


@pytest.mark.parametrize("temperature", [0.4, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(temperature: float) -> None:
    z = np.random.default_rng(1).normal(0, 3, (20_000, 10))
    labels = sampled_labels(z, seed=2)
    # Logits z * T divided by the fitted T give back z, for which the labels are calibrated.
    fitted = fit_temperature((z * temperature).astype(np.float32), labels)
    assert fitted == pytest.approx(temperature, rel=0.03)


def test_bad_fit_inputs_raise_one_clear_error() -> None:
    z = np.random.default_rng(0).normal(0, 1, (100, 10)).astype(np.float32)
    labels = np.arange(100) % 10
    with pytest.raises(DigitsError, match="N x 10 logits"):
        fit_temperature(z[:, :9], labels)
    with pytest.raises(DigitsError, match="integer labels"):
        fit_temperature(z, labels[:50])
    with pytest.raises(DigitsError, match=r"labels must be in 0\.\.9"):
        fit_temperature(z, labels + 1)
    with pytest.raises(DigitsError, match="NaN or infinity"):
        fit_temperature(np.where(z > 2, np.nan, z), labels)
    # Every image right: the NLL keeps falling as T -> 0, no T to report.
    with pytest.raises(DigitsError) as error:
        fit_temperature(np.eye(10, dtype=np.float32)[labels], labels)
    assert_says(str(error.value), "all 100", "no minimum", "fit on more held-out images")
    # Confidently wrong everywhere: the NLL falls as T grows, to the search's upper bound.
    with pytest.raises(DigitsError) as error:
        fit_temperature(np.eye(10, dtype=np.float32)[(labels + 1) % 10] * 5, labels)
    assert_says(str(error.value), "no minimum", "fit on more held-out images")


@pytest.fixture(scope="module")
def model(mnist_subset: Mnist) -> keras.Model:
    """A small CNN (its output: logits) trained for one epoch on 3,000 real MNIST images (plain
    cross-entropy on the logits): the committed subset's first 3,000 training images."""
    train = Split(mnist_subset.train_images[:3_000], mnist_subset.train_labels[:3_000])
    model = build_model(SMALL, seed=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=loss)
    model.fit(train.images, train.labels, epochs=1, batch_size=128, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out(mnist_subset: Mnist) -> tuple[Split, Split]:
    """1,000 real validation-like images (the subset's other training images, unseen by
    `model`) and the subset's 1,000 test images."""
    pool = Split(mnist_subset.train_images[3_000:], mnist_subset.train_labels[3_000:])
    return pool, Split(mnist_subset.test_images, mnist_subset.test_labels)


def test_scaling_keeps_the_argmax_and_divides_the_logits(
    model: keras.Model, held_out: tuple[Split, Split]
) -> None:
    images = held_out[1].images
    calibrated, plain = probability_model(model, 0.5), probability_model(model)
    z = logits(model, images)
    np.testing.assert_array_equal(z, model.predict(images, verbose=0))  # the network's output
    original, scaled = plain.predict(images, verbose=0), calibrated.predict(images, verbose=0)
    np.testing.assert_array_equal(scaled.argmax(axis=1), z.argmax(axis=1))
    np.testing.assert_allclose(softmax(z, axis=1), original, atol=1e-6)
    np.testing.assert_allclose(softmax(z / 0.5, axis=1), scaled, atol=1e-6)
    np.testing.assert_array_equal(logits(calibrated, images), z)  # logits stay unscaled
    assert (temperature_of(model), temperature_of(calibrated)) == (1.0, 0.5)
    assert calibrated.layers[-1].name == "probabilities"
    assert len(calibrated.outputs) == 1 and scaled.shape == (len(images), 10)
    assert scaled.dtype == np.float32
    # What evaluate reconstructs from the calibrated output and T alone: the original output.
    unscaled = Predictions(scaled, held_out[1].labels, 0.5).unscaled().probabilities
    np.testing.assert_allclose(unscaled, original, atol=1e-5)


def test_a_fitted_temperature_lowers_the_held_out_nll(
    model: keras.Model, held_out: tuple[Split, Split]
) -> None:
    validation, test = held_out
    temperature = fit_temperature(logits(model, validation.images), validation.labels)
    calibrated = probability_model(model, temperature)
    test_logits = logits(model, test.images)
    before = log_loss(test.labels, softmax(test_logits, axis=1), labels=range(10))
    after = log_loss(test.labels, calibrated.predict(test.images, verbose=0), labels=range(10))
    assert temperature != pytest.approx(1.0, abs=0.02)
    assert after < before
    # The NLL the fit minimises is the one evaluate reports.
    probabilities = calibrated.predict(test.images, verbose=0)
    assert scaled_nll(test_logits, test.labels, temperature) == pytest.approx(
        nll(test.labels, probabilities), rel=1e-4
    )


def test_the_calibrated_model_saves_loads_rescales_and_exports(
    model: keras.Model, held_out: tuple[Split, Split], tmp_path: Path
) -> None:
    images = held_out[1].images[:256]
    calibrated = probability_model(model, 1.7)
    expected = calibrated.predict(images, verbose=0)
    calibrated.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert temperature_of(loaded) == 1.7
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    # Scaling a calibrated model again replaces its temperature instead of compounding it.
    rescaled = probability_model(loaded, 0.5)
    assert temperature_of(rescaled) == 0.5
    np.testing.assert_allclose(
        rescaled.predict(images, verbose=0),
        probability_model(model, 0.5).predict(images, verbose=0),
        atol=1e-6,
    )
    # Export checks SavedModel and TFLite predictions against the Keras model's (1e-4).
    exported = export_all(loaded, tmp_path / "export", images)
    assert [path.name for path in exported] == ["saved_model", "model.tflite"]
    assert all(path.exists() for path in exported)


def test_bad_temperatures_and_models_raise_one_clear_error(model: keras.Model) -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(DigitsError) as error:
            probability_model(model, bad)
        assert_says(str(error.value), "temperature", "> 0", repr(bad))
    inputs = keras.Input((4,))
    regression = keras.Model(inputs, keras.layers.Dense(1, name="value")(inputs))
    with pytest.raises(DigitsError) as error:
        probability_model(regression, 2.0)
    # The model, the layer it lacks, its last layer, and the fix.
    assert_says(str(error.value), repr(regression.name), "'logits'", "'value'", "build_model")
    with pytest.raises(DigitsError) as error:
        logits(regression, np.zeros((1, 4), np.float32))
    assert_says(str(error.value), "'logits'", "`dvc repro train`")
