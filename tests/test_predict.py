"""`digits predict` and `digits export` on images and models the tests make themselves."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from digits import cli
from digits.data import Split, save_split
from digits.errors import DigitsError
from digits.export import export_all, saved_model_predict, tflite_predict
from digits.hyperparameters import Hyperparameters
from digits.mnist import Mnist
from digits.model import build_model, load_model, probability_model
from digits.predict import (
    LOW_CONFIDENCE,
    MAX_FRAMES,
    Prediction,
    Source,
    load_frames,
    read_inputs,
    to_mnist_format,
)
from tests.helpers import assert_says, permission_bits_stop_writes

SMALL = Hyperparameters(
    conv_blocks=2, convs_per_block=1, base_filters=16, first_kernel_size=3, kernel_size=3,
    batch_norm=True, dropout=0.1, dense_units=64, learning_rate=0.003,
)  # fmt: skip
CASES = Path(__file__).parent / "cases" / "predict"


@pytest.fixture(scope="module")
def model_path(mnist_subset: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained for three epochs on the committed subset's 4,000 real MNIST training
    images, saved as the pipeline publishes it: network (logits) -> temperature -> softmax."""
    train = Split(mnist_subset.train_images, mnist_subset.train_labels)
    keras.utils.set_random_seed(0)  # the same model whichever tests ran before
    model = build_model(SMALL, seed=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=loss)
    model.fit(train.images, train.labels, epochs=3, batch_size=128, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    probability_model(model).save(path)
    return path


@pytest.fixture(scope="module")
def digits_on_disk(
    mnist_subset: Mnist, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, int]]:
    """Twenty MNIST test digits as files: upscaled PNG, inverted with a margin, and JPEG."""
    folder = tmp_path_factory.mktemp("images")
    files = []
    for index in range(20):
        image, label = (
            Image.fromarray(mnist_subset.test_images[index]),
            int(mnist_subset.test_labels[index]),
        )
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


def load_one(path: Path) -> np.ndarray:
    """The MNIST-format array of a single-frame file; its error is raised."""
    [(_, result)] = load_frames(path)
    if isinstance(result, DigitsError):
        raise result
    return result


def correlation(recovered: np.ndarray, original: np.ndarray) -> float:
    return float(np.corrcoef(recovered.astype(float).ravel(), original.astype(float).ravel())[0, 1])


def close_to(recovered: np.ndarray, original: np.ndarray) -> bool:
    """Whether two MNIST-format digits match up to a pixel's shift of a stroke or its edge."""
    blurred = [ndimage.gaussian_filter(a.astype(float), 1.0) for a in (recovered, original)]
    return correlation(*blurred) > 0.85


def run_predict(model_path: Path, files: list[Path]) -> list[dict]:
    """What `digits predict --json` prints for the files."""
    with contextlib.redirect_stdout(io.StringIO()) as output:
        cli.main(["predict", "--model", str(model_path), "--json", *(str(p) for p in files)])
    return json.loads(output.getvalue())


def test_preprocessing_recovers_the_mnist_digit(mnist_subset: Mnist, digits_on_disk: list) -> None:
    correlations = []
    for path, _ in digits_on_disk:
        index = int(path.stem.split("_")[-1])
        correlations.append(correlation(load_one(path), mnist_subset.test_images[index]))
    assert np.median(correlations) > 0.9
    assert min(correlations) > 0.6


def test_predict_classifies_files_of_any_size_and_polarity(
    model_path: Path, digits_on_disk: list, tmp_path: Path
) -> None:
    drawn = [(pen_digit(d, tmp_path / f"pen_{d}.png"), d) for d in (0, 1, 7)]
    files = digits_on_disk + drawn
    predictions = run_predict(model_path, [p for p, _ in files])
    predicted = {item["path"]: item["digit"] for item in predictions}
    correct = [predicted[str(path)] == label for path, label in files]
    assert sum(correct) >= len(files) - 2, predictions
    assert all(predicted[str(path)] == digit for path, digit in drawn), predictions
    assert all(len(item["top3"]) == 3 for item in predictions)
    assert all(item["frame"] is None for item in predictions)


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
    assert "notes.png: not a readable image" in errors[0]
    assert "empty.png: the file is empty" in errors[1]
    assert "huge.png: 10000x5000 pixels is too large" in errors[2]
    assert "blank.png: no digit found" in errors[3]
    assert "missing.png: no such file" in errors[4]
    assert output.out.startswith(f"{good}: ")


def test_json_lists_a_failed_file_in_its_place_with_its_error(
    model_path: Path, digits_on_disk: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    empty, good = tmp_path / "empty.png", digits_on_disk[0][0]
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["predict", "--model", str(model_path), "--json", str(empty), str(good)])
    assert exit_code.value.code == 1
    listed = json.loads(capsys.readouterr().out)
    assert listed[0] == {"path": str(empty), "frame": None, "error": f"{empty}: the file is empty"}
    assert listed[1]["path"] == str(good)
    assert listed[1]["digit"] in range(10)
    assert len(listed) == 2


def test_a_flat_image_is_refused() -> None:
    with pytest.raises(DigitsError, match="no digit found"):
        to_mnist_format(np.full((30, 30), 17.0))


def test_exports_predict_exactly_like_the_keras_model(
    model_path: Path, mnist_subset: Mnist, tmp_path: Path
) -> None:
    model = keras.models.load_model(model_path)
    images = mnist_subset.test_images[:32]
    saved_model, tflite = export_all(model, tmp_path / "export", images)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(saved_model_predict(saved_model, images), expected, atol=1e-5)
    np.testing.assert_allclose(tflite_predict(tflite, images), expected, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "model.tflite",
        "saved_model",
    ]


# --- The regression cases: files as they arrive from cameras, scanners and drawing apps ---------


def expected_cases() -> list[tuple[str, list[int]]]:
    with (CASES / "expected.csv").open(newline="") as table:
        return [
            (row["file"], [int(d) for d in row["expected"].split(";")])
            for row in csv.DictReader(table)
        ]


def test_every_case_file_is_listed_in_expected_csv() -> None:
    listed = {name for name, _ in expected_cases()}
    on_disk = {p.name for p in CASES.iterdir() if p.suffix not in (".csv", ".md")}
    assert listed == on_disk


@pytest.fixture(scope="module")
def case_predictions(model_path: Path) -> dict[str, list[dict]]:
    """`digits predict --json` on every case file at once (loading the model once), by file."""
    by_file: dict[str, list[dict]] = {}
    for item in run_predict(model_path, sorted(CASES / name for name, _ in expected_cases())):
        by_file.setdefault(Path(item["path"]).name, []).append(item)
    return by_file


@pytest.mark.parametrize(("name", "digits"), expected_cases(), ids=lambda v: str(v))
def test_case_files_are_read_as_a_person_sees_them(
    name: str, digits: list[int], case_predictions: dict[str, list[dict]]
) -> None:
    predictions = case_predictions[name]
    assert [item["digit"] for item in predictions] == digits, predictions
    frames = [item["frame"] for item in predictions]
    assert frames == ([None] if len(digits) == 1 else list(range(1, len(digits) + 1)))
    assert not any(item["low_confidence"] for item in predictions), predictions


def test_a_multi_frame_file_prints_one_line_per_frame(
    model_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = CASES / "multipage_3_then_5.tif"
    cli.main(["predict", "--model", str(model_path), str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"{path}[frame 1]: 3", f"{path}[frame 2]: 5"]


# --- The whole kind: every mode, polarity, transparency, orientation, size and background -------

# Per mode: the format written when there is no orientation tag, and when there is one (GIF has
# no EXIF). Every pair reopens in the same mode, which the test checks.
FORMATS = {
    "1": ("PNG", "PNG"),
    "L": ("JPEG", "JPEG"),
    "LA": ("PNG", "PNG"),
    "P": ("GIF", "PNG"),
    "PA": ("TIFF", "TIFF"),
    "RGB": ("JPEG", "JPEG"),
    "RGBA": ("PNG", "PNG"),
    "CMYK": ("JPEG", "TIFF"),
    "YCbCr": ("TIFF", "TIFF"),
    "I;16": ("PNG", "TIFF"),
    "I": ("TIFF", "TIFF"),
    "F": ("TIFF", "TIFF"),
}
# alpha: uniform ink colour, the shape only in the alpha channel (drawing apps); cutout: the ink's
# own shades, opaque where there is ink (the paper erased); key: the paper's colour marked
# transparent (tRNS, GIF).
TRANSPARENCY = {"LA": ("alpha", "cutout"), "PA": ("alpha", "cutout"), "RGBA": ("alpha", "cutout")}
TRANSPARENCY.update({"L": ("key",), "RGB": ("key",), "P": ("key",)})
# The transposition that stores an upright image so that EXIF orientation k shows it upright.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def matrix() -> list[tuple[str, str, str, str | None, int]]:
    """(mode, ink, scene, transparency, EXIF orientation) for every combination that exists."""
    cases = []
    for mode in FORMATS:
        for transparency in (None, *TRANSPARENCY.get(mode, ())):
            for ink in ("light", "dark"):
                for scene in ("fills", "photo"):
                    for oriented in (False, True):
                        orientation = 2 + len(cases) % 7 if oriented else 1
                        cases.append((mode, ink, scene, transparency, orientation))
    return cases


def scene(digit: np.ndarray, ink: str, name: str, rng: np.random.Generator, uniform: bool):
    """Luminance in [0, 1] and ink coverage in [0, 1] of a scene holding an MNIST digit.

    fills: the digit cropped to its bounding box, scaled up 6x and centred in a square as high as
    it is, so it touches the top and bottom (and the sides, if it is as wide as it is high).
    photo: the digit scaled up 3x, off centre in a 480 x 640 photo whose paper is lit unevenly
    (a left-to-right gradient and a vignette) and grainy (noise), unless `uniform`.
    """
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    factor = 6 if name == "fills" else 3
    big = crop.resize((crop.width * factor, crop.height * factor), Image.Resampling.BICUBIC)
    if name == "fills":
        side = max(big.size)
        coverage = np.zeros((side, side))
        left = (side - big.width) // 2
        coverage[: big.height, left : left + big.width] = np.asarray(big) / 255
    else:
        coverage = np.zeros((480, 640))
        coverage[260 : 260 + big.height, 150 : 150 + big.width] = np.asarray(big) / 255
    paper, ink_level = (0.88, 0.08) if ink == "dark" else (0.1, 0.92)
    light = np.ones_like(coverage)
    noise = np.zeros_like(coverage)
    if name == "photo" and not uniform:
        y, x = np.mgrid[-1 : 1 : coverage.shape[0] * 1j, -1 : 1 : coverage.shape[1] * 1j]
        light = (1 - 0.15 * x) * (1 - 0.25 * (x**2 + y**2) / 2)
        noise = rng.normal(0, 0.03, coverage.shape)
    luminance = light * (paper * (1 - coverage) + ink_level * coverage) + noise
    return np.clip(luminance, 0, 1), coverage


def render(luminance: np.ndarray, coverage: np.ndarray, mode: str, ink: str, transparency):
    """The scene as a Pillow image of `mode`, with the transparency asked for."""
    grey = Image.fromarray(np.rint(luminance * 255).astype(np.uint8))
    tinted = Image.merge(  # warm paper: colour conversions must go through luminance
        "RGB", [grey, grey.point(lambda v: v * 0.96), grey.point(lambda v: v * 0.88)]
    )
    info = {}
    if transparency == "alpha":
        colour = Image.new("RGB", grey.size, "white" if ink == "light" else "black")
        alpha = Image.fromarray(np.rint(coverage * 255).astype(np.uint8))
    elif transparency == "cutout":
        opaque = np.where(coverage > 0.1, 255, 0).astype(np.uint8)
        colour, alpha = tinted, Image.fromarray(opaque)
    else:
        colour, alpha = tinted, Image.new("L", grey.size, 255)
    if mode == "1":
        return grey.convert("1", dither=Image.Dither.NONE), info
    if mode in ("L", "LA"):
        image = colour.convert("L")
        if mode == "LA":
            image.putalpha(alpha)
    elif mode in ("P", "PA"):
        image = colour.convert("P", palette=Image.Palette.ADAPTIVE)
        if mode == "PA":
            image = image.convert("PA")
            image.putalpha(alpha)
    elif mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        image = colour.convert("RGBA" if mode == "RGBA" else "RGB")
        if mode == "RGBA":
            image.putalpha(alpha)
        image = image.convert(mode) if mode in ("CMYK", "YCbCr") else image
    elif mode == "I;16":
        image = Image.fromarray(np.rint(luminance * 65535).astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray(np.rint(luminance * 65535).astype(np.int32))
    else:
        image = Image.fromarray(luminance.astype(np.float32))
    if transparency == "key":
        corner = np.unravel_index(np.argmin(coverage), coverage.shape)[::-1]
        info["transparency"] = image.getpixel(corner)
    return image, info


MATRIX = matrix()


def write_case(case: int, digit: np.ndarray, folder: Path) -> Path:
    """Matrix case `case` holding `digit`, written as the file a camera or app would write."""
    mode, ink, name, transparency, orientation = MATRIX[case]
    rng = np.random.default_rng(case)
    luminance, coverage = scene(digit, ink, name, rng, uniform=transparency is not None)
    image, info = render(luminance, coverage, mode, ink, transparency)
    file_format = FORMATS[mode][orientation != 1]
    if transparency == "key" and file_format == "JPEG":
        file_format = "PNG"
    if orientation != 1:
        image = image.transpose(STORED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        info["exif"] = exif
    path = folder / f"case{case}.{file_format.lower()}"
    image.save(path, file_format, **info)
    return path


@pytest.fixture(scope="module")
def matrix_files(mnist_subset: Mnist, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every matrix case as a file, case i holding MNIST test digit i."""
    folder = tmp_path_factory.mktemp("matrix")
    return [write_case(case, mnist_subset.test_images[case], folder) for case in range(len(MATRIX))]


@pytest.mark.parametrize(
    "case",
    range(len(MATRIX)),
    ids=["-".join(str(v or "opaque") for v in values) for values in MATRIX],
)
def test_every_mode_polarity_transparency_orientation_and_size(
    case: int, matrix_files: list[Path], mnist_subset: Mnist
) -> None:
    mode, _, _, transparency, orientation = MATRIX[case]
    with Image.open(matrix_files[case]) as written:
        assert written.mode == mode
        assert written.getexif().get(0x0112, 1) == orientation
        assert ("transparency" in written.info) == (transparency == "key")
    recovered = load_one(matrix_files[case])
    assert recovered.shape == (28, 28) and recovered.dtype == np.uint8
    assert close_to(recovered, mnist_subset.test_images[case])


def test_the_model_reads_the_whole_matrix_as_it_reads_mnist(
    model_path: Path, matrix_files: list[Path], mnist_subset: Mnist
) -> None:
    """Through the CLI, the model reads the cases as well as the original MNIST images.

    Measured: 166 of 168 right, against 165 of the originals; 1 original read right is misread.
    """
    predicted = np.array([item["digit"] for item in run_predict(model_path, matrix_files)])
    model = keras.models.load_model(model_path)
    on_mnist = model.predict(mnist_subset.test_images[: len(MATRIX)], verbose=0).argmax(axis=1)
    labels = mnist_subset.test_labels[: len(MATRIX)]
    lost = [MATRIX[i] for i in np.flatnonzero((predicted != labels) & (on_mnist == labels))]
    assert len(lost) <= 2, lost
    assert (predicted == labels).mean() >= (on_mnist == labels).mean() - 0.01


# --- Deep pixels: 16-bit, 32-bit integer and float, scaled by bit depth or value range ----------


def dark_on_light(digit: np.ndarray) -> np.ndarray:
    """The MNIST digit scaled up 4x as dark ink on light paper, luminance in [0, 1]."""
    big = Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)
    return 0.85 - 0.75 * np.asarray(big, dtype=np.float64) / 255


DEEP = {  # name: (mode and format written, pixel values from luminance in [0, 1])
    "16-bit PNG": ("I;16", "PNG", lambda v: np.rint(v * 65535).astype(np.uint16)),
    "16-bit PNG, narrow range": (
        "I;16", "PNG", lambda v: np.rint(10_000 + v * 50_000).astype(np.uint16)
    ),
    "16-bit big-endian TIFF": ("I;16B", "TIFF", lambda v: np.rint(v * 65535).astype(">u2")),
    "12-bit camera data in 16 bits": ("I;16", "TIFF", lambda v: np.rint(v * 4095).astype("<u2")),
    "8-bit values in 32-bit integers": ("I", "TIFF", lambda v: np.rint(v * 255).astype("i4")),
    "20-bit values in 32-bit integers": ("I", "TIFF", lambda v: np.rint(v * 2**20).astype("i4")),
    "signed 32-bit integers": ("I", "TIFF", lambda v: np.rint((v - 0.5) * 2**30).astype("i4")),
    "float in [0, 1]": ("F", "TIFF", lambda v: v.astype(np.float32)),
    "float in [0, 255]": ("F", "TIFF", lambda v: (v * 255).astype(np.float32)),
    "float in [-1, 1]": ("F", "TIFF", lambda v: (v * 2 - 1).astype(np.float32)),
    "float with NaN and inf": ("F", "TIFF", lambda v: with_gaps(v).astype(np.float32)),
}  # fmt: skip


def with_gaps(values: np.ndarray) -> np.ndarray:
    """A float image with a NaN border (a masked frame) and scattered dead pixels (inf)."""
    values = values.copy()
    values[:6], values[-6:], values[:, :6], values[:, -6:] = np.nan, np.nan, np.nan, np.nan
    rows, cols = np.random.default_rng(0).integers(0, values.shape[0], (2, 40))
    values[rows, cols] = np.inf
    return values


@pytest.mark.parametrize("kind", DEEP)
def test_deep_pixels_are_scaled_by_bit_depth_or_range(
    kind: str, mnist_subset: Mnist, tmp_path: Path
) -> None:
    mode, file_format, encode = DEEP[kind]
    index = list(DEEP).index(kind)
    pixels = encode(dark_on_light(mnist_subset.test_images[index]))
    image = Image.frombytes(mode, pixels.shape[::-1], pixels.tobytes())
    path = tmp_path / f"deep.{file_format.lower()}"
    image.save(path, file_format)
    with Image.open(path) as reopened:
        assert reopened.mode == mode
    assert close_to(load_one(path), mnist_subset.test_images[index])


def test_a_faint_mark_in_a_16_bit_image_is_not_stretched_into_a_digit(
    mnist_subset: Mnist, tmp_path: Path
) -> None:
    """Three levels of 65535 apart is no ink, though it is the whole range of the file."""
    pixels = np.where(mnist_subset.test_images[0] > 127, 40_000, 40_003).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "faint.png")
    with pytest.raises(DigitsError, match="no digit found"):
        load_one(tmp_path / "faint.png")


# --- Transparency beyond the matrix: a palette with an alpha per colour ---------------------------


def test_a_palette_with_alpha_per_colour_shows_its_white_ink(
    mnist_subset: Mnist, tmp_path: Path
) -> None:
    digit = Image.fromarray(mnist_subset.test_images[3]).resize(
        (112, 112), Image.Resampling.BICUBIC
    )
    white_ink = Image.new("RGBA", digit.size, (255, 255, 255, 0))
    white_ink.putalpha(digit)
    white_ink.quantize(64, method=Image.Quantize.FASTOCTREE).save(tmp_path / "ink.png")
    with Image.open(tmp_path / "ink.png") as reopened:
        assert reopened.mode == "P" and isinstance(reopened.info["transparency"], bytes)
    assert close_to(load_one(tmp_path / "ink.png"), mnist_subset.test_images[3])


# --- Multi-frame files: every frame, each on its own line -----------------------------------------


def mnist_frame(mnist: Mnist, index: int, mode: str = "L") -> Image.Image:
    big = Image.fromarray(mnist.test_images[index]).resize((84, 84), Image.Resampling.BICUBIC)
    if mode == "I;16":
        return Image.fromarray(np.asarray(big, dtype=np.uint16) * 257)
    return big.convert(mode)


def test_an_animated_gif_is_classified_frame_by_frame(
    mnist_subset: Mnist, model_path: Path, tmp_path: Path
) -> None:
    frames = [mnist_frame(mnist_subset, i, "P") for i in (0, 1, 2)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 300])
    predictions = run_predict(model_path, [path])
    assert [(p["path"], p["frame"], p["digit"]) for p in predictions] == [
        (str(path), i + 1, int(mnist_subset.test_labels[i])) for i in range(3)
    ]


def test_a_blank_page_is_an_error_of_its_own_and_the_other_pages_are_still_read(
    mnist_subset: Mnist, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Pages of different modes, the second blank: exit 1, one error line, two predictions."""
    pages = [
        mnist_frame(mnist_subset, 0, "RGB"),
        Image.new("L", (84, 84), 255),
        mnist_frame(mnist_subset, 1),
    ]
    pages.append(mnist_frame(mnist_subset, 2, "I;16"))
    path = tmp_path / "scan.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["predict", "--model", str(model_path), str(path)])
    assert exit_code.value.code == 1
    output = capsys.readouterr()
    assert output.err.strip().splitlines() == [
        f"error: {path}[frame 2]: no digit found (the image is one flat colour)"
    ]
    labels = [int(mnist_subset.test_labels[i]) for i in (0, 1, 2)]
    assert [line.split(" (")[0] for line in output.out.splitlines()] == [
        f"{path}[frame 1]: {labels[0]}",
        f"{path}[frame 3]: {labels[1]}",
        f"{path}[frame 4]: {labels[2]}",
    ]


def test_a_file_with_too_many_frames_gets_one_error(tmp_path: Path) -> None:
    pages = [Image.new("L", (8, 8), i) for i in range(MAX_FRAMES + 1)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    [(source, error)] = load_frames(tmp_path / "stack.tif")
    assert source == Source(str(tmp_path / "stack.tif"))
    assert isinstance(error, DigitsError)
    assert f"{MAX_FRAMES + 1} frames is too many" in str(error)


# --- Inputs unlike a digit: an error for no ink or a speck, a warning for low confidence -------


@pytest.mark.parametrize(
    ("mode", "colour"),
    [
        ("1", 1), ("L", 200), ("LA", (30, 255)), ("P", 7), ("RGB", (10, 200, 30)),
        ("RGBA", (255, 255, 255, 0)), ("RGBA", (0, 0, 0, 0)), ("CMYK", (0, 0, 0, 255)),
        ("YCbCr", (128, 128, 128)), ("I;16", 30_000), ("I", 70_000), ("F", 0.5),
    ],
)  # fmt: skip
def test_a_flat_image_in_any_mode_has_no_digit(mode: str, colour: object, tmp_path: Path) -> None:
    path = tmp_path / "flat.tiff"
    Image.new(mode, (60, 40), colour).save(path)
    with pytest.raises(DigitsError, match="no digit found"):
        load_one(path)


def test_a_speck_is_not_a_digit(tmp_path: Path) -> None:
    image = Image.new("L", (300, 200), 240)
    ImageDraw.Draw(image).ellipse((150, 100, 154, 104), fill=20)
    image.save(tmp_path / "speck.png")
    with pytest.raises(DigitsError) as error:
        load_one(tmp_path / "speck.png")
    assert_says(str(error.value), "speck.png", "no digit found", "speck", "pixels")


def test_noise_is_not_a_digit(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(128, 30, (240, 320))
    Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(tmp_path / "noise.png")
    with pytest.raises(DigitsError) as error:
        load_one(tmp_path / "noise.png")
    assert_says(str(error.value), "noise.png", "no digit found", "contrast", "noise")


def test_specks_beside_a_digit_are_dropped(mnist_subset: Mnist, tmp_path: Path) -> None:
    paper = np.full((400, 500), 0.9)
    paper[150:234, 200:284] -= 0.8 * np.asarray(
        Image.fromarray(mnist_subset.test_images[5]).resize((84, 84), Image.Resampling.BICUBIC)
    ) / 255  # fmt: skip
    rng = np.random.default_rng(5)
    for row, col in zip(rng.integers(0, 397, 40), rng.integers(0, 497, 40), strict=True):
        paper[row : row + 3, col : col + 3] = 0.1
    Image.fromarray((paper * 255).astype(np.uint8)).save(tmp_path / "specks.png")
    assert close_to(load_one(tmp_path / "specks.png"), mnist_subset.test_images[5])


def test_a_low_top_probability_is_flagged_as_maybe_not_a_digit() -> None:
    source = Source("scribble.png")
    unsure = Prediction(source, 4, LOW_CONFIDENCE - 0.01, [(4, 0.59), (9, 0.3), (7, 0.05)])
    sure = Prediction(source, 4, LOW_CONFIDENCE, [(4, 0.6), (9, 0.3), (7, 0.05)])
    assert unsure.line().endswith("; low confidence: may not be a digit")
    assert unsure.as_dict()["low_confidence"] is True
    assert "low confidence" not in sure.line()
    assert sure.as_dict()["low_confidence"] is False
    assert Source("a.tif", 2).name == "a.tif[frame 2]"


def test_a_shape_the_model_is_unsure_of_is_flagged_through_the_cli(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A triangle, read by the model with its logits divided by 50: the belief spread over the
    digits whatever the network makes of the shape (top probability under LOW_CONFIDENCE)."""
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).polygon([(100, 20), (180, 180), (20, 180)], outline=0, width=12)
    image.save(tmp_path / "triangle.png")
    unsure = tmp_path / "unsure.keras"
    probability_model(load_model(model_path), temperature=50.0).save(unsure)
    cli.main(["predict", "--model", str(unsure), str(tmp_path / "triangle.png")])
    assert capsys.readouterr().out.rstrip().endswith("; low confidence: may not be a digit")
    [item] = run_predict(unsure, [tmp_path / "triangle.png"])
    assert item["low_confidence"] is True and item["probability"] < LOW_CONFIDENCE


# --- Inputs as people pass them to image tools: folders, standard input, URLs, HEIC photos -------


def test_a_folder_is_read_in_name_order_and_what_is_not_an_image_is_named(
    model_path: Path, mnist_subset: Mnist, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "scans"
    (folder / "older").mkdir(parents=True)
    for name, index in (("c.png", 2), ("a.png", 0), ("b.jpg", 1), (".hidden.png", 3)):
        Image.fromarray(mnist_subset.test_images[index]).resize((84, 84)).save(folder / name)
    (folder / "notes.txt").write_text("scanned on Monday")
    cli.main(["predict", "--model", str(model_path), "--json", str(folder)])  # exit 0
    output = capsys.readouterr()
    listed = json.loads(output.out)
    assert [item["path"] for item in listed] == [
        str(folder / n) for n in ("a.png", "b.jpg", "c.png")
    ]
    assert [item["digit"] for item in listed] == [
        int(mnist_subset.test_labels[i]) for i in (0, 1, 2)
    ]
    [note] = output.err.strip().splitlines()
    assert note.startswith(f"note: {folder}: skipped 3 entries")
    assert all(name in note for name in (".hidden.png", "notes.txt", "older/"))


def test_a_folder_without_images_is_an_error_in_its_place(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    [(source, error)] = read_inputs([str(tmp_path / "empty")])[0]
    assert source == Source(str(tmp_path / "empty"))
    assert isinstance(error, DigitsError) and "no image files in this folder" in str(error)


def test_a_url_is_named_whole_with_how_to_download_it(
    model_path: Path, digits_on_disk: list, capsys: pytest.CaptureFixture
) -> None:
    url, good = "https://example.com/digits/seven.png", digits_on_disk[0][0]
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["predict", "--model", str(model_path), "--json", url, str(good)])
    assert exit_code.value.code == 1
    output = capsys.readouterr()
    [error] = output.err.strip().splitlines()
    assert error.startswith(f"error: {url}: ") and f"curl -o digit.png '{url}'" in error
    listed = json.loads(output.out)
    assert listed[0] == {"path": url, "frame": None, "error": error.removeprefix("error: ")}
    assert listed[1]["path"] == str(good)


@pytest.mark.parametrize("as_json", [False, True], ids=["lines", "json"])
def test_dash_reads_one_image_from_standard_input(
    as_json: bool,
    model_path: Path,
    mnist_subset: Mnist,
    digits_on_disk: list,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    piped = io.BytesIO()
    Image.fromarray(mnist_subset.test_images[1]).resize((84, 84)).save(piped, "PNG")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped.getvalue())))
    good, label = digits_on_disk[0]
    json_flag = ["--json"] if as_json else []
    cli.main(["predict", "--model", str(model_path), *json_flag, str(good), "-"])
    out = capsys.readouterr().out
    digit = int(mnist_subset.test_labels[1])
    if as_json:
        listed = json.loads(out)
        assert [(item["path"], item["digit"]) for item in listed] == [
            (str(good), label),
            ("-", digit),
        ]
    else:
        assert [line.split(" (")[0] for line in out.splitlines()] == [
            f"{good}: {label}",
            f"<stdin>: {digit}",
        ]


# The start of a HEIC file as an iPhone writes it: the ISO base media `ftyp` box, major brand
# `heic`, compatible brands `mif1` and `heic`, then the `meta` box's header.
HEIC_START = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x01\x0emeta\x00\x00\x00\x00"


def test_a_heic_photo_without_pillow_heif_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if not installed: import fails
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(HEIC_START + bytes(256))
    with pytest.raises(DigitsError, match="pip install pillow-heif") as error:
        load_one(path)
    assert str(error.value).startswith(f"{path}: a HEIC/HEIF photo")


def test_a_heic_photo_is_read_with_pillow_heif(mnist_subset: Mnist, tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip(
        "pillow_heif", reason="pillow-heif (the optional heic extra) is not installed"
    )
    path = tmp_path / "IMG_0002.HEIC"
    photo = Image.fromarray(255 - mnist_subset.test_images[4]).resize((112, 112)).convert("RGB")
    pillow_heif.from_pillow(photo).save(path, quality=90)  # leaves Pillow's openers as they are
    assert path.read_bytes()[4:12] == b"ftypheic"
    assert close_to(load_one(path), mnist_subset.test_images[4])


def test_show_crop_saves_what_the_model_read(
    model_path: Path, digits_on_disk: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good, scan, empty = digits_on_disk[0][0], CASES / "multipage_3_then_5.tif", tmp_path / "e.png"
    empty.write_bytes(b"")
    crops = tmp_path / "crops"
    with pytest.raises(SystemExit):  # the empty file fails; the others are still cropped
        cli.main(["predict", "--model", str(model_path), "--show-crop", str(crops), str(good),
                  str(scan), str(empty)])  # fmt: skip
    capsys.readouterr()
    expected = {
        f"{good.name}.png": load_one(good),
        "multipage_3_then_5.tif.frame1.png": load_frames(scan)[0][1],
        "multipage_3_then_5.tif.frame2.png": load_frames(scan)[1][1],
    }
    assert sorted(p.name for p in crops.iterdir()) == sorted(expected)
    for name, read in expected.items():
        with Image.open(crops / name) as crop:
            assert crop.mode == "L" and crop.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(crop), read)


# --- Writing where it cannot: one line naming the folder ------------------------------------------


@pytest.fixture
def test_split(mnist_subset: Mnist, tmp_path: Path) -> Path:
    path = tmp_path / "test.npz"
    save_split(Split(mnist_subset.test_images[:256], mnist_subset.test_labels[:256]), path)
    return path


def run_export(model_path: Path, test_split: Path, out: Path, capsys: pytest.CaptureFixture) -> str:
    """The one error line of `digits export --out OUT`, which must exit 1."""
    with pytest.raises(SystemExit) as exit_code:
        cli.main(
            ["export", "--model", str(model_path), "--test", str(test_split), "--out", str(out)]
        )
    assert exit_code.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    return line


def test_export_under_a_file_names_it(
    model_path: Path, test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Meaningful as root too, where permission bits do not stop writes."""
    blocker = tmp_path / "export.zip"
    blocker.write_text("a file where a folder should be")
    line = run_export(model_path, test_split, blocker / "export", capsys)
    assert f"cannot write to {blocker / 'export'}: {blocker} is a file, not a folder" in line
    assert "choose another --out" in line


@pytest.mark.skipif(
    not permission_bits_stop_writes(), reason="this user (root) writes to read-only folders"
)
def test_export_into_a_read_only_folder_names_it(
    model_path: Path, test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        line = run_export(model_path, test_split, locked, capsys)
    finally:
        locked.chmod(0o755)
    assert f"cannot write to {locked} (permission denied)" in line
    assert f"chmod u+w {locked}" in line and "--out" in line
