"""`digits predict` and `digits export` on images and models the tests make themselves."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits import cli
from digits.data import Split
from digits.errors import DigitsError
from digits.export import export_all, saved_model_predict, tflite_predict
from digits.mnist import Mnist
from digits.model import Hyperparameters, build_model
from digits.predict import load_image, to_mnist_format

SMALL = Hyperparameters(
    conv_blocks=2, convs_per_block=1, base_filters=16, kernel_size=3, batch_norm=True,
    dropout=0.1, dense_units=64, learning_rate=0.003,
)  # fmt: skip


@pytest.fixture(scope="module")
def model_path(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained for two epochs on 12,000 real MNIST images (about 97% accurate)."""
    train = Split(mnist.train_images, mnist.train_labels).subset(12_000, seed=0)
    model = build_model(SMALL, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    model.fit(train.images, train.labels, epochs=2, batch_size=128, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def digits_on_disk(
    mnist: Mnist, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, int]]:
    """Twenty MNIST test digits as files: upscaled PNG, inverted with a margin, and JPEG."""
    folder = tmp_path_factory.mktemp("images")
    files = []
    for index in range(20):
        image, label = Image.fromarray(mnist.test_images[index]), int(mnist.test_labels[index])
        if index % 3 == 0:
            image = image.resize((140, 140), Image.Resampling.BICUBIC)
            path = folder / f"big_{index}.png"
        elif index % 3 == 1:
            inverted = Image.new("L", (200, 120), 255)
            inverted.paste(Image.eval(image.resize((84, 84)), lambda v: 255 - v), (60, 20))
            image, path = inverted, folder / f"dark_on_light_{index}.png"
        else:
            image, path = image.resize((56, 56)).convert("RGB"), folder / f"photo_{index}.jpg"
        image.save(path)
        files.append((path, label))
    return files


def pen_digit(digit: int, path: Path) -> Path:
    """A digit drawn with pen strokes, dark on light, on a 200 x 240 canvas."""
    image = Image.new("L", (200, 240), 255)
    pen = ImageDraw.Draw(image)
    if digit == 0:
        pen.ellipse((50, 30, 150, 210), outline=0, width=18)
    elif digit == 1:
        pen.line((100, 30, 100, 210), fill=0, width=20)
    elif digit == 7:
        pen.line((40, 40, 160, 40), fill=0, width=18)
        pen.line((160, 40, 80, 210), fill=0, width=18)
    image.save(path)
    return path


def test_preprocessing_recovers_the_mnist_digit(mnist: Mnist, digits_on_disk: list) -> None:
    correlations = []
    for path, _ in digits_on_disk:
        index = int(path.stem.split("_")[-1])
        recovered = load_image(path).astype(float).ravel()
        original = mnist.test_images[index].astype(float).ravel()
        correlations.append(np.corrcoef(recovered, original)[0, 1])
    assert np.median(correlations) > 0.9
    assert min(correlations) > 0.6


def test_predict_classifies_files_of_any_size_and_polarity(
    model_path: Path, digits_on_disk: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    drawn = [(pen_digit(d, tmp_path / f"pen_{d}.png"), d) for d in (0, 1, 7)]
    files = digits_on_disk + drawn
    cli.main(["predict", "--model", str(model_path), "--json", *(str(p) for p, _ in files)])
    predictions = json.loads(capsys.readouterr().out)
    predicted = {item["path"]: item["digit"] for item in predictions}
    correct = [predicted[str(path)] == label for path, label in files]
    assert sum(correct) >= len(files) - 2, predictions
    assert all(predicted[str(path)] == digit for path, digit in drawn), predictions
    assert all(len(item["top3"]) == 3 for item in predictions)


def test_bad_files_get_one_error_each_and_the_rest_are_still_classified(
    model_path: Path, digits_on_disk: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("1", (10_000, 5_000)).save(tmp_path / "huge.png")
    Image.new("L", (50, 50), 200).save(tmp_path / "blank.png")
    good = digits_on_disk[0][0]
    names = ["notes.png", "empty.png", "huge.png", "blank.png", "missing.png"]
    with pytest.raises(SystemExit) as exit_code:
        cli.main(
            ["predict", "--model", str(model_path), *(str(tmp_path / n) for n in names), str(good)]
        )
    assert exit_code.value.code == 1
    output = capsys.readouterr()
    errors = output.err.strip().splitlines()
    assert len(errors) == 5
    assert "notes.png: not a readable PNG or JPEG image" in errors[0]
    assert "empty.png: the file is empty" in errors[1]
    assert "huge.png: 10000x5000 pixels is too large" in errors[2]
    assert "blank.png: no digit found" in errors[3]
    assert "missing.png: no such file" in errors[4]
    assert output.out.startswith(f"{good}: ")


def test_a_flat_image_is_refused() -> None:
    with pytest.raises(DigitsError, match="no digit found"):
        to_mnist_format(np.full((30, 30), 17.0))


def test_exports_predict_exactly_like_the_keras_model(
    model_path: Path, mnist: Mnist, tmp_path: Path
) -> None:
    model = keras.models.load_model(model_path)
    images = mnist.test_images[:32]
    saved_model, tflite = export_all(model, tmp_path / "export", images)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(saved_model_predict(saved_model, images), expected, atol=1e-5)
    np.testing.assert_allclose(tflite_predict(tflite, images), expected, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "model.tflite",
        "saved_model",
    ]
