"""Export the trained model for serving: a TensorFlow SavedModel and a TFLite flatbuffer.

Both take the same input as the Keras model (N x 28 x 28 uint8, see `digits.model`), and each
export is checked against the Keras model's predictions before it is put in place.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from digits.errors import DigitsError
from digits.files import atomic_path
from digits.model import require_probabilities

TOLERANCE = 1e-4  # the largest difference in any probability an export may show against Keras


def export_saved_model(
    model: keras.Model, target: Path, check_images: np.ndarray, expected: np.ndarray
) -> None:
    """Write `model` as a SavedModel directory at `target`, put in place only once its
    predictions on `check_images` (N x 28 x 28 uint8) match `expected` (N x 10 float32).

    Raises DigitsError when they differ by more than TOLERANCE; `target` is then left as it was.
    """

    def verify(path: Path) -> None:
        _check(saved_model_predict(path, check_images), expected, path)

    with atomic_path(target, verify=verify) as temporary:
        model.export(str(temporary), format="tf_saved_model", verbose=False)


def saved_model_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities N x 10 float32 from the SavedModel's `serve` on images N x 28 x 28 uint8."""
    loaded = tf.saved_model.load(str(path))  # must outlive the call: it owns the variables
    return np.asarray(loaded.serve(tf.constant(images, dtype=tf.uint8)))


def export_tflite(
    saved_model: Path, target: Path, check_images: np.ndarray, expected: np.ndarray
) -> None:
    """Convert the SavedModel at `saved_model` to a TFLite flatbuffer at `target`, checked like
    `export_saved_model`; raises DigitsError when its predictions differ by more than TOLERANCE."""
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()

    def verify(path: Path) -> None:
        _check(tflite_predict(path, check_images), expected, path)

    with atomic_path(target, verify=verify) as temporary:
        temporary.write_bytes(flatbuffer)


def export_all(model: keras.Model, out_dir: Path, check_images: np.ndarray) -> list[Path]:
    """SavedModel then TFLite under `out_dir`, each verified against the Keras predictions on
    `check_images` (N x 28 x 28 uint8); returns their paths. Raises DigitsError on a mismatch,
    or for a network that outputs logits instead of probabilities (`require_probabilities`)."""
    require_probabilities(model)
    expected = model.predict(check_images, verbose=0)
    saved_model, tflite = out_dir / "saved_model", out_dir / "model.tflite"
    export_saved_model(model, saved_model, check_images, expected)
    export_tflite(saved_model, tflite, check_images, expected)
    return [saved_model, tflite]


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities N x 10 float32 from the TFLite file at `path` on images N x 28 x 28 uint8."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter points users to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(input_detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], images.astype(input_detail["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(output_detail["index"])


def _check(actual: np.ndarray, expected: np.ndarray, path: Path) -> None:
    difference = float(np.abs(actual - expected).max())
    if difference > TOLERANCE:
        raise DigitsError(f"{path}: exported predictions differ from Keras by {difference:.2e}")
