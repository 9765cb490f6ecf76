"""The CNN family the tuner searches and train builds.

The model takes raw 28x28 uint8 images: scaling to [0, 1] and the channel axis live here, in the
model itself, so every caller (tuning, training, evaluation, prediction, export) feeds the same
arrays and no preprocessing can drift between them.
"""

from __future__ import annotations

import json
import math
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import keras
from keras import layers, ops

from digits.data import IMAGE_SHAPE, NUM_CLASSES
from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from digits.params import AugmentationParams

# Keras' default (0.99) leaves the moving statistics near their initial values after the few
# hundred steps of a tuning trial, and inference then collapses to chance; 0.9 converges in ~50.
BATCH_NORM_MOMENTUM = 0.9

# The name of the network's last layer, whose output is the logits (see `build_model`).
LOGITS = "logits"

# What both the search and the training select by: accuracy on the validation split.
SELECTION_METRIC = "val_accuracy"


@keras.saving.register_keras_serializable(package="digits")
class RandomAffine(layers.Layer):
    """Random rotation, zoom and shift composed into one warp per image (one resample, not three).

    Takes and returns N x 28 x 28 x 1 float images; bilinear, zero outside the image. Active
    only when training; an identity at inference. Each image draws an angle up to
    +-`rotation_degrees`, a scale up to 1 +- `zoom_fraction` and a shift up to +-`shift_fraction`
    of the width and height.
    """

    def __init__(
        self,
        rotation_degrees: float,
        shift_fraction: float,
        zoom_fraction: float,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation_degrees = rotation_degrees
        self.shift_fraction = shift_fraction
        self.zoom_fraction = zoom_fraction
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]

        def uniform(limit: float) -> Any:
            return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)

        angle = uniform(math.radians(self.rotation_degrees))
        scale = 1.0 + uniform(self.zoom_fraction)
        shift_x = uniform(self.shift_fraction * width)
        shift_y = uniform(self.shift_fraction * height)
        # Map each output pixel back to its source: p_in = M (p_out - centre - shift) + centre,
        # with M = rotation(-angle) / scale; the 8 numbers per image are the projective transform
        # [a0, a1, a2, b0, b1, b2, c0, c1] of `keras.ops.image.affine_transform` (output -> input).
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
        from_x, from_y = centre_x + shift_x, centre_y + shift_y
        zeros = ops.zeros_like(angle)
        transform = ops.stack(
            [
                cos, sin, centre_x - (cos * from_x + sin * from_y),
                -sin, cos, centre_y - (-sin * from_x + cos * from_y),
                zeros, zeros,
            ],
            axis=1,
        )  # fmt: skip
        return ops.image.affine_transform(
            images, transform, interpolation="bilinear", fill_mode="constant"
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "shift_fraction": self.shift_fraction,
            "zoom_fraction": self.zoom_fraction,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="digits")
class RandomIntensity(layers.Layer):
    """Random contrast, background level and pixel noise per image: x' = clip(b + c x + n, 0, 1).

    Takes and returns N x 28 x 28 x 1 float images in [0, 1]. Active only when training; an
    identity at inference. Each image draws a contrast c up to `contrast_fraction` below 1, a
    background level b in [0, 1 - c] (so b + c x stays in [0, 1]) and a noise standard deviation
    up to `noise_std`, the sd of its per-pixel Gaussian noise n. Intensity jitter and additive
    noise are the usual photometric training augmentations (Krizhevsky, Sutskever and Hinton
    (2012), "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS, alter
    training images' intensities). Without it, a net that only ever sees white digits on black
    reads a digit on a grey background as an 8 (MNIST-C's brightness and fog: docs/robustness.md).
    """

    def __init__(
        self, contrast_fraction: float, noise_std: float, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.contrast_fraction = contrast_fraction
        self.noise_std = noise_std
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        batch = ops.shape(images)[0]

        def uniform(low: float, high: float) -> Any:
            return keras.random.uniform((batch, 1, 1, 1), low, high, seed=self.seed_generator)

        contrast = uniform(1.0 - self.contrast_fraction, 1.0)
        level = uniform(0.0, 1.0) * (1.0 - contrast)
        sd = uniform(0.0, self.noise_std)
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator) * sd
        return ops.clip(level + contrast * images + noise, 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "contrast_fraction": self.contrast_fraction,
            "noise_std": self.noise_std,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="digits")
class TemperatureScaling(layers.Layer):
    """Divides its input (the logits, N x 10) by a fixed temperature T > 0; no trainable weights.

    Temperature scaling (Guo et al. 2017, see `digits.calibration`). Raises DigitsError for a T
    that is not finite and > 0.
    """

    def __init__(self, temperature: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.temperature = check_temperature(temperature)

    def call(self, logits: Any) -> Any:
        return ops.divide(logits, ops.cast(self.temperature, logits.dtype))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}


def check_temperature(temperature: float) -> float:
    """`temperature` as a float; raises DigitsError for a number that is not finite and > 0."""
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise DigitsError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def build_model(
    hp: Hyperparameters,
    augmentation: AugmentationParams | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Conv blocks, then a Dropout/Dense head: images N x 28 x 28 uint8 in (scaled to [0, 1]
    inside), logits N x 10 float32 out (a linear Dense named `LOGITS`). Train it with
    `from_logits=True` losses; `probability_model` adds the temperature and the softmax for the
    models that are saved, exported and predicted with. An `augmentation` adds its training-only
    layers (`RandomAffine`, `RandomIntensity`) for the changes it asks for.

    A block is `convs_per_block` x (Conv2D [+ BatchNorm] + ReLU) with MaxPooling2D moved before
    the last BatchNorm + ReLU. Max-pooling commutes with ReLU, so the block computes nearly the
    same function, while BatchNorm (unfused in Keras 3, a large share of a CPU step) and ReLU
    then touch a quarter of the activations, which makes each training step cheaper.
    """
    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255, name="scale")(inputs)
    x = layers.Reshape((*IMAGE_SHAPE, 1), name="add_channel")(x)
    if augmentation is not None:
        x = _augment(x, augmentation, seed)
    for block in range(hp.conv_blocks):
        filters = hp.base_filters * 2**block
        for conv in range(hp.convs_per_block):
            name = f"block{block + 1}_conv{conv + 1}"
            kernel = hp.first_kernel_size if block == conv == 0 else hp.kernel_size
            x = layers.Conv2D(
                filters, kernel, padding="same", use_bias=not hp.batch_norm, name=name
            )(x)
            if conv + 1 == hp.convs_per_block:
                x = layers.MaxPooling2D(name=f"block{block + 1}_pool")(x)
            if hp.batch_norm:
                x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
            x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(hp.dropout, seed=seed, name="dropout1")(x)
    x = layers.Dense(hp.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(hp.dropout, seed=seed, name="dropout2")(x)
    outputs = layers.Dense(NUM_CLASSES, name=LOGITS)(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def logits_output(model: keras.Model) -> Any:
    """The symbolic output of `model`'s `LOGITS` layer: N x 10 pre-softmax logits, unscaled by
    any temperature the model carries.

    Raises DigitsError for a model without that layer, such as one saved when the network ended
    in a softmax Dense (its logits are not in the model any more), naming the fix.
    """
    try:
        return model.get_layer(LOGITS).output
    except ValueError:
        last = model.layers[-1]
        raise DigitsError(
            f"model {model.name!r} has no {LOGITS!r} layer (last layer: {last.name!r}, "
            f"{type(last).__name__}): build it with digits.model.build_model, or retrain it "
            "with `dvc repro train` if it was saved with a softmax Dense output"
        ) from None


def probability_model(network: keras.Model, temperature: float = 1.0) -> keras.Model:
    """`network`'s logits -> `TemperatureScaling` "temperature" -> `Softmax` "probabilities": a
    model with the same input and ONE output, softmax(logits / temperature), N x 10 float32.

    `network` is a `build_model` network or itself a probability model (its temperature is then
    replaced, not compounded); the new model shares its layers and weights. Raises DigitsError
    for a temperature that is not finite and > 0, or a model without a `LOGITS` layer.
    """
    scaling = TemperatureScaling(check_temperature(temperature), name="temperature")
    outputs = layers.Softmax(name="probabilities")(scaling(logits_output(network)))
    return keras.Model(network.input, outputs, name=network.name)


def outputs_probabilities(model: keras.Model) -> bool:
    """Whether `model`'s one output is a softmax: a `probability_model`, or a model saved when
    the network ended in a softmax Dense (still read by predict, export and evaluate)."""
    last = model.layers[-1]
    return isinstance(last, layers.Softmax) or (
        isinstance(last, layers.Dense) and last.activation is keras.activations.softmax
    )


def require_probabilities(model: keras.Model) -> None:
    """Raises DigitsError, naming the model and the fix, when `model` outputs logits (a training
    checkpoint) rather than probabilities, which predict and export would report as such."""
    if not outputs_probabilities(model):
        raise DigitsError(
            f"model {model.name!r} outputs logits, not probabilities (a training checkpoint?): "
            "use the published model (models/model.keras), or save "
            "digits.model.probability_model(network) and use that"
        )


def _augment(x: Any, augmentation: AugmentationParams, seed: int | None) -> Any:
    """The training-only augmentation layers `augmentation` asks for, applied to `x`:
    `RandomAffine` for any non-zero distortion, then `RandomIntensity` for any non-zero
    intensity change (seeded one above `seed`, so its draws are not the affine's)."""
    if any(
        (augmentation.rotation_degrees, augmentation.shift_fraction, augmentation.zoom_fraction)
    ):
        x = RandomAffine(
            augmentation.rotation_degrees,
            augmentation.shift_fraction,
            augmentation.zoom_fraction,
            seed=seed,
            name="augment",
        )(x)
    if augmentation.contrast_fraction or augmentation.noise_std:
        x = RandomIntensity(
            augmentation.contrast_fraction,
            augmentation.noise_std,
            seed=None if seed is None else seed + 1,
            name="augment_intensity",
        )(x)
    return x


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss: Any) -> None:
    """Compile with the accuracy metric that `SELECTION_METRIC` reads on validation."""
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def load_model(path: Path | str, fix: str | None = None) -> keras.Model:
    """The Keras model saved at `path` (a `.keras` file), loaded in Keras' safe mode.

    `fix` says how to get a good copy back (default: copy a good model there again). Raises
    DigitsError, in one line naming the file, when it is missing; damaged (not a zip archive, as
    a truncated or overwritten `.keras` file is); saved by another Keras version that this one
    cannot read (both versions named); holds a `Lambda` layer, whose Python code safe mode
    does not load; or fails to load for another reason (Keras' reason, shortened).
    """
    path = Path(path)
    fix = fix or f"copy a good model to {path} again"
    if not path.is_file():
        raise DigitsError(f"{path} not found: {fix}")
    if not zipfile.is_zipfile(path):
        raise DigitsError(
            f"{path} is damaged: not a valid .keras file (a .keras model is a zip archive; this "
            f"one is truncated or overwritten): {fix}"
        )
    try:
        return keras.models.load_model(path)
    except Exception as error:
        raise _unloadable(path, error, fix) from None


def _unloadable(path: Path, error: Exception, fix: str) -> DigitsError:
    """Why a `.keras` zip archive did not load, as one short line (see `load_model`)."""
    # Keras nests each failing object's whole config in the message: keep the innermost cause.
    detail = str(error).split("Exception encountered:")[-1].strip().splitlines()
    reason = textwrap.shorten(detail[0] if detail else type(error).__name__, 200)
    saved = _saved_keras_version(path)
    if saved is not None and saved != keras.__version__:
        return DigitsError(
            f"{path} did not load ({textwrap.shorten(reason, 80)}); it was saved by Keras {saved} "
            f"and this is Keras "
            f"{keras.__version__}, the likely cause: install that version (pip install "
            f"keras=={saved}) or save the model again with this one"
        )
    lambdas = _lambda_layers(path)
    if lambdas:
        return DigitsError(
            f"{path} holds Lambda layers ({', '.join(lambdas)}), whose Python code is not loaded "
            "from a file: it could run anything (Keras safe mode); rebuild the model without "
            "Lambda layers and save it again"
        )
    return DigitsError(f"{path} is not a readable Keras model ({reason}): {fix}")


def _archive_json(path: Path, name: str) -> Any:
    """The JSON file `name` inside the `.keras` zip archive at `path`, or None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(name))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _saved_keras_version(path: Path) -> str | None:
    """The Keras version recorded in the archive's metadata.json, if any."""
    metadata = _archive_json(path, "metadata.json")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return str(version) if version else None


def _lambda_layers(path: Path) -> list[str]:
    """Names of the `Lambda` layers anywhere in the archive's config.json."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(str((node.get("config") or {}).get("name", "unnamed")))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(_archive_json(path, "config.json"))
    return found


def flops_per_image(network: keras.Model) -> int:
    """Floating-point operations of one image's forward pass through `network`'s convolutions
    and dense layers, a multiply-add counted as 2 (the usual count, e.g. in Howard et al.
    (2017), "MobileNets", which counts multiply-adds). Normalisation, activations and pooling
    are left out: they add a few percent. A property of the model, not of the machine: what
    `tuner.max_mflops_per_image` caps and the one-standard-error rule minimises."""
    total = 0
    for layer in network.layers:
        if isinstance(layer, layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kernel_height, kernel_width = layer.kernel_size
            channels = layer.input.shape[-1]
            total += 2 * height * width * kernel_height * kernel_width * channels * filters
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)
