"""`load_model` and the `digits` commands on model files that do not load: damaged, saved by
another Keras version, or holding code (a Lambda layer); and the DVC command the error names for
the pipeline's own model, run as a user would run it. Models saved when the network ended in a
softmax Dense still predict, export and evaluate; a bare network (logits) is refused."""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from digits import cli
from digits.calibration import logits, temperature_of
from digits.data import Split, save_split
from digits.errors import DigitsError
from digits.evaluation import Predictions, evaluation_metrics
from digits.hyperparameters import Hyperparameters
from digits.mnist import Mnist
from digits.model import (
    TemperatureScaling,
    build_model,
    load_model,
    probability_model,
)
from digits.predict import read_inputs
from tests.helpers import assert_says, git, run, run_unchecked

TINY = Hyperparameters(
    conv_blocks=1, convs_per_block=1, base_filters=4, first_kernel_size=3, kernel_size=3,
    batch_norm=False, dropout=0.1, dense_units=8, learning_rate=0.003,
)  # fmt: skip
FUTURE = "3.99.0"  # a Keras version newer than any this project installs


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained) model of the project's family, saved as `.keras` as the pipeline
    publishes it (ending in the Softmax layer "probabilities")."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    probability_model(build_model(TINY, seed=0)).save(path)
    return path


def truncated_copy(source: Path, target: Path) -> Path:
    """`source` cut to half its size, as an interrupted copy or download leaves it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def rewritten(source: Path, target: Path, version: str | None, unknown_argument: bool) -> Path:
    """A copy of the `.keras` archive `source` whose metadata.json names Keras `version` (None:
    unchanged) and whose output layer's config carries an argument no Keras release knows."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for item in archive.infolist():
            data = archive.read(item.filename)
            if item.filename == "metadata.json" and version is not None:
                data = json.dumps({**json.loads(data), "keras_version": version}).encode()
            if item.filename == "config.json" and unknown_argument:
                config = json.loads(data)
                [layer] = [x for x in config["config"]["layers"] if x["name"] == "probabilities"]
                layer["config"]["kernel_quantizer"] = {"bits": 4}
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return target


def digit_png(mnist: Mnist, path: Path) -> Path:
    Image.fromarray(mnist.test_images[0]).resize((84, 84)).save(path)
    return path


def predict_error(model: Path, image: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line `digits predict --model MODEL IMAGE` prints on stderr, exiting 1."""
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["predict", "--model", str(model), str(image)])
    assert exit_code.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    return line


def test_a_truncated_model_is_called_damaged_with_a_fix_for_its_path(
    good_model: Path, mnist_subset: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = truncated_copy(good_model, tmp_path / "elsewhere" / "x.keras")
    with pytest.raises(DigitsError) as error:
        load_model(damaged)
    assert_says(str(error.value), str(damaged), "damaged")
    assert "not found" not in str(error.value).lower()
    line = predict_error(damaged, digit_png(mnist_subset, tmp_path / "digit.png"), capsys)
    assert f"{damaged} is damaged" in line and "truncated" in line
    assert f"copy or export a good model to {damaged}" in line
    assert "dvc" not in line  # DVC does not track this file


def test_a_missing_model_is_called_missing(tmp_path: Path) -> None:
    with pytest.raises(DigitsError, match=r"absent\.keras not found"):
        load_model(tmp_path / "absent.keras")


def test_a_model_from_another_keras_version_names_both_versions(
    good_model: Path, tmp_path: Path
) -> None:
    future = rewritten(good_model, tmp_path / "future.keras", FUTURE, unknown_argument=True)
    with pytest.raises(DigitsError) as error:
        load_model(future)
    message = str(error.value)
    assert f"Keras {FUTURE}" in message and f"Keras {keras.__version__}" in message
    assert f"pip install keras=={FUTURE}" in message
    assert len(message.replace(str(future), "")) < 300 and "\n" not in message  # no config dump


def test_a_model_this_keras_cannot_read_gets_a_short_reason(
    good_model: Path, tmp_path: Path
) -> None:
    """Same version, still unreadable: Keras' innermost reason, without the layer configs."""
    odd = rewritten(good_model, tmp_path / "odd.keras", None, unknown_argument=True)
    with pytest.raises(DigitsError) as error:
        load_model(odd)
    message = str(error.value)
    assert f"{odd} is not a readable Keras model" in message
    assert "kernel_quantizer" in message  # the argument Keras refused
    assert "config=" not in message and len(message) < 400 and "\n" not in message


def test_a_lambda_layer_is_not_loaded(
    tmp_path: Path, mnist_subset: Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keras' safe mode refuses the Python code a Lambda layer holds; one line says so."""
    inputs = keras.Input(shape=(28, 28), dtype="uint8")
    scaled = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32") / 255, name="scale")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(scaled))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(DigitsError, match=r"Lambda layers \(scale\)"):
        load_model(path)
    line = predict_error(path, digit_png(mnist_subset, tmp_path / "digit.png"), capsys)
    assert str(path) in line and "not loaded" in line and "could run anything" in line


@pytest.mark.slow
def test_the_fix_named_for_the_pipelines_damaged_model_restores_it(
    good_model: Path, mnist_subset: Mnist, tmp_path: Path
) -> None:
    """In a real DVC project whose stage writes models/model.keras, `digits predict` on the
    truncated model names a command; running it makes `digits predict` work again."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "trained.keras").write_bytes(good_model.read_bytes())
    digit_png(mnist_subset, project / "digit.png")
    (project / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: cp trained.keras " + f"{cli.MODEL}\n"
        "    deps: [trained.keras]\n" + f"    outs: [{cli.MODEL}]\n"
    )
    git(project, "init", "-q", "-b", "main")
    run(project, "dvc", "init", "-q")
    run(project, "dvc", "repro", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a trained model")
    truncated_copy(good_model, project / cli.MODEL)

    failed = run_unchecked(project, "digits", "predict", "digit.png")
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()[-1:]
    assert f"{cli.MODEL} is damaged" in line
    command = line.split("`")[1]
    assert command == f"dvc checkout --force {cli.MODEL}"
    run(project, *shlex.split(command))
    assert run(project, "digits", "predict", "digit.png").startswith("digit.png: ")


def says(message: str, *facts: str) -> None:
    """`message` is one line carrying every fact, whatever the sentence around them."""
    assert "\n" not in message.strip() and all(fact in message for fact in facts), message


def old_form_model(temperature: float | None, train: Split) -> keras.Model:
    """A network as `build_model` made it when its last layer was a softmax Dense named
    "probabilities" (reduced to one conv block), trained one epoch on `train`. With a
    `temperature`, as calibration then rebuilt it: that Dense made linear ("logits"), then
    TemperatureScaling "temperature" and Softmax "probabilities"."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28), dtype="uint8", name="image")
    x = layers.Reshape((28, 28, 1), name="add_channel")(
        layers.Rescaling(1 / 255, name="scale")(inputs)
    )
    x = layers.ReLU(name="block1_conv1_relu")(
        layers.MaxPooling2D(name="block1_pool")(layers.Conv2D(8, 3, name="block1_conv1")(x))
    )
    x = layers.Dense(32, activation="relu", name="dense")(layers.Flatten(name="flatten")(x))
    softmax_dense = layers.Dense(10, activation="softmax", name="probabilities")
    network = keras.Model(inputs, softmax_dense(x), name="digits_cnn")
    network.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    network.fit(train.images, train.labels, epochs=1, batch_size=32, verbose=0)
    if temperature is None:
        return network
    linear = layers.Dense(10, name="logits")
    scaled = TemperatureScaling(temperature, name="temperature")(linear(x))
    calibrated = keras.Model(
        inputs, layers.Softmax(name="probabilities")(scaled), name="digits_cnn"
    )
    linear.set_weights(softmax_dense.get_weights())
    return calibrated


@pytest.mark.parametrize("temperature", [None, 1.7])
def test_a_model_saved_with_a_softmax_dense_output_still_predicts_exports_and_evaluates(
    temperature: float | None,
    tiny_splits: dict[str, Split],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "old.keras"
    old_form_model(temperature, tiny_splits["train"]).save(path)
    model, test = load_model(path), tiny_splits["test"]
    probabilities = model.predict(test.images, verbose=0)

    image = tmp_path / "digit.png"
    Image.fromarray(test.images[0]).resize((84, 84)).save(image)
    cli.main(["predict", "--model", str(path), "--json", str(image)])
    [shown] = json.loads(capsys.readouterr().out)
    [(_, read)], _ = read_inputs([str(image)])  # the 28 x 28 image predict gave the model
    expected = model.predict(read[None], verbose=0)[0]
    assert shown["digit"] == int(expected.argmax())
    assert shown["probability"] == round(float(expected.max()), 4)

    save_split(test, tmp_path / "test.npz")
    cli.main(["export", "--model", str(path), "--test", str(tmp_path / "test.npz"),
              "--out", str(tmp_path / "export")])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "model.tflite",
        "saved_model",
    ]

    # What the evaluate stage does with the model it loads.
    predictions = Predictions(probabilities.astype(np.float32), test.labels, temperature_of(model))
    metrics = evaluation_metrics(predictions)
    assert metrics["temperature"] == (temperature or 1.0)
    assert metrics["accuracy"] == round(float((probabilities.argmax(1) == test.labels).mean()), 6)
    assert (metrics["nll"] == metrics["nll_unscaled"]) == (temperature is None)


def test_a_model_without_its_logits_layer_says_to_retrain(tiny_splits: dict[str, Split]) -> None:
    """The temperature fit needs the logits, which a softmax Dense output does not keep."""
    old = old_form_model(None, tiny_splits["train"])
    with pytest.raises(DigitsError) as error:
        logits(old, tiny_splits["val"].images)
    says(str(error.value), "'logits'", "'probabilities'", "`dvc repro train`")


def test_a_network_that_outputs_logits_is_refused_by_predict_and_export(
    tiny_splits: dict[str, Split], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training checkpoint is the bare network: its outputs are not probabilities."""
    path = tmp_path / "best.keras"
    build_model(TINY, seed=0).save(path)
    image = tmp_path / "digit.png"
    Image.fromarray(tiny_splits["test"].images[0]).save(image)
    says(
        predict_error(path, image, capsys),
        "outputs logits",
        "models/model.keras",
        "probability_model",
    )
    split = tmp_path / "test.npz"
    save_split(tiny_splits["test"], split)
    with pytest.raises(SystemExit):
        cli.main(
            ["export", "--model", str(path), "--test", str(split), "--out", str(tmp_path / "x")]
        )
    [line] = capsys.readouterr().err.strip().splitlines()
    says(line, "outputs logits", "probability_model")
    assert not (tmp_path / "x").exists()
