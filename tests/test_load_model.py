"""`load_model` and the `digits` commands on model files that do not load: damaged, saved by
another Keras version, or holding code (a Lambda layer); and the DVC command the error names for
the pipeline's own model, run as a user would run it."""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import keras
import pytest
from PIL import Image

from digits import cli
from digits.errors import DigitsError
from digits.mnist import Mnist
from digits.model import Hyperparameters, build_model, load_model
from tests.helpers import git, run, run_unchecked

TINY = Hyperparameters(
    conv_blocks=1, convs_per_block=1, base_filters=4, first_kernel_size=3, kernel_size=3,
    batch_norm=False, dropout=0.1, dense_units=8, learning_rate=0.003,
)  # fmt: skip
FUTURE = "3.99.0"  # a Keras version newer than any this project installs


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained) model of the project's family, saved as `.keras`."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(TINY, seed=0).save(path)
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
    good_model: Path, mnist: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = truncated_copy(good_model, tmp_path / "elsewhere" / "x.keras")
    with pytest.raises(DigitsError, match="is damaged") as error:
        load_model(damaged)
    assert "not found" not in str(error.value).lower()
    line = predict_error(damaged, digit_png(mnist, tmp_path / "digit.png"), capsys)
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
    assert len(message) < 300 and "\n" not in message


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
    tmp_path: Path, mnist: Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keras' safe mode refuses the Python code a Lambda layer holds; one line says so."""
    inputs = keras.Input(shape=(28, 28), dtype="uint8")
    scaled = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32") / 255, name="scale")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(scaled))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(DigitsError, match=r"Lambda layers \(scale\)"):
        load_model(path)
    line = predict_error(path, digit_png(mnist, tmp_path / "digit.png"), capsys)
    assert str(path) in line and "not loaded" in line and "could run anything" in line


@pytest.mark.slow
def test_the_fix_named_for_the_pipelines_damaged_model_restores_it(
    good_model: Path, mnist: Mnist, tmp_path: Path
) -> None:
    """In a real DVC project whose stage writes models/model.keras, `digits predict` on the
    truncated model names a command; running it makes `digits predict` work again."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "trained.keras").write_bytes(good_model.read_bytes())
    digit_png(mnist, project / "digit.png")
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
