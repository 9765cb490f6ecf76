"""Phone photos of a digit on a sheet lying on a desk, made by benchmarks/phone_photos.py.

The hardest kinds: a note whose dark desk shows on all four sides (read as a 0 or an 8 when
the desk was taken for ink), a desk filling two edges, a sheet touching every edge with the
desk in the corners, and chalk on a dark board; and the photos that must be refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from digits.errors import DigitsError
from digits.mnist import Mnist
from tests.helpers import REPO
from tests.test_predict import load_one, model_path, run_predict  # noqa: F401 (fixture)

sys.path.insert(0, str(REPO / "benchmarks"))
import phone_photos

# (MNIST test index, seed, sides the desk covers (0: only the corners), chalk on a board)
HARD = [
    (0, 11, 4, False),
    (1, 12, 4, False),
    (2, 13, 2, False),
    (3, 14, 2, False),
    (4, 15, 0, False),
    (5, 16, 1, False),
    (6, 17, 4, True),
    (10, 18, 2, True),
    (8, 19, 0, True),
    (9, 20, 3, True),
]


def photo_file(mnist: Mnist, case: tuple[int, int, int, bool], folder: Path) -> Path:
    index, seed, sides, inverse = case
    data, photo = phone_photos.make_photo(
        mnist.test_images[index], int(mnist.test_labels[index]), seed, sides, inverse
    )
    assert photo.sides == sides and 0.09 <= photo.surround <= 0.62
    path = folder / f"photo_{index}_{phone_photos.kind_name(sides, inverse)}.jpg"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def hard_photos(mnist_subset: Mnist, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    return [photo_file(mnist_subset, case, folder) for case in HARD]


def blurred_correlation(recovered: np.ndarray, original: np.ndarray) -> float:
    a, b = (ndimage.gaussian_filter(x.astype(float), 1.0).ravel() for x in (recovered, original))
    return float(np.corrcoef(a, b)[0, 1])


def test_a_generated_photo_is_the_same_for_the_same_seed(mnist_subset: Mnist) -> None:
    first = phone_photos.make_photo(mnist_subset.test_images[0], 7, 3, 4, False)
    assert first == phone_photos.make_photo(mnist_subset.test_images[0], 7, 3, 4, False)


@pytest.mark.parametrize("case", range(len(HARD)), ids=[str(c) for c in HARD])
def test_the_digit_is_cut_from_the_sheet_not_the_desk(
    case: int, hard_photos: list[Path], mnist_subset: Mnist
) -> None:
    """The 28x28 crop is the MNIST digit the photo was made from, not the desk or the sheet.

    The photo's strokes are thickened or thinned, blurred and (chalk) broken, so the crop
    matches the MNIST digit less closely than a scan does (0.65-0.95 here); a crop of the desk
    or of the sheet's edge matches it far less.
    """
    recovered = load_one(hard_photos[case])
    assert blurred_correlation(recovered, mnist_subset.test_images[HARD[case][0]]) > 0.6


def test_hard_photos_are_classified_right(
    model_path: Path,  # noqa: F811
    hard_photos: list[Path],
    mnist_subset: Mnist,
) -> None:
    predicted = [item["digit"] for item in run_predict(model_path, hard_photos)]
    assert predicted == [int(mnist_subset.test_labels[index]) for index, *_ in HARD]


@pytest.mark.parametrize(("sides", "inverse"), [(4, False), (1, False), (2, True)])
def test_a_blank_sheet_is_refused(sides: int, inverse: bool, tmp_path: Path) -> None:
    data, _ = phone_photos.make_photo(np.zeros((28, 28), np.uint8), 0, 7, sides, inverse)
    (tmp_path / "blank.jpg").write_bytes(data)
    with pytest.raises(DigitsError, match="no digit found on the sheet") as error:
        load_one(tmp_path / "blank.jpg")
    assert "blank.jpg" in str(error.value) and "crop the photo" in str(error.value)


def test_a_note_too_small_to_find_is_refused_not_read_as_a_digit(
    mnist_subset: Mnist, tmp_path: Path
) -> None:
    """A note a twentieth of the frame on a wide desk is a solid shape, not pen strokes."""
    data, _ = phone_photos.make_photo(mnist_subset.test_images[0], 7, 3, 4, False)
    (tmp_path / "note.jpg").write_bytes(data)
    desk, _ = phone_photos._surround(np.random.default_rng(0), (1600, 1200), 200, False)
    photo = Image.fromarray(np.clip(desk, 0, 255).astype(np.uint8))
    photo.paste(Image.open(tmp_path / "note.jpg").resize((400, 300)), (600, 450))
    photo.save(tmp_path / "desk.jpg", quality=90)
    with pytest.raises(DigitsError, match="no sheet with a digit found") as error:
        load_one(tmp_path / "desk.jpg")
    assert "desk.jpg" in str(error.value) and "plain background" in str(error.value)
