"""Classify digit images from files: any size, dark-on-light or light-on-dark.

Images are brought to MNIST's own format the way the dataset was made: grayscale, a light digit
on black, cropped to the digit, scaled to fit 20x20 keeping the aspect ratio, and placed in a
28x28 frame so that its centre of mass sits at the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digits.errors import DigitsError

MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024
DIGIT_BOX = 20
FRAME = 28
MNIST_CENTRE = 14  # where MNIST digits have their centre of mass (row and column), measured
INK_FRACTION = 0.2  # a pixel belongs to the digit above this share of the brightest ink


@dataclass(frozen=True)
class Prediction:
    path: str
    digit: int
    probability: float
    top3: list[tuple[int, float]]

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "digit": self.digit,
            "probability": round(self.probability, 4),
            "top3": [{"digit": d, "probability": round(p, 4)} for d, p in self.top3],
        }

    def line(self) -> str:
        others = ", ".join(f"{d} {p:.3f}" for d, p in self.top3)
        return f"{self.path}: {self.digit} ({self.probability:.3f}); top 3: {others}"


def read_grayscale(path: Path) -> np.ndarray:
    """The image as float grayscale in [0, 255], transparent areas made white."""
    if not path.is_file():
        raise DigitsError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise DigitsError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise DigitsError(f"{path}: {size:,} bytes is too large for a digit image (limit 50 MiB)")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise DigitsError(
                    f"{path}: {image.width}x{image.height} pixels is too large "
                    f"(limit {MAX_PIXELS:,}); crop or shrink it first"
                )
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            return np.asarray(ImageOps.grayscale(image), dtype=np.float64)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise DigitsError(f"{path}: not a readable PNG or JPEG image ({error})") from None


def to_mnist_format(gray: np.ndarray, source: str = "image") -> np.ndarray:
    """28x28 uint8, light digit on black, cropped, fit to 20x20 and centred by mass."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 255.0 - gray if np.median(border) > 127 else gray.copy()
    ink -= np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]))
    ink = np.clip(ink, 0, None)
    if ink.max() <= 0:
        raise DigitsError(f"{source}: no digit found (the image is one flat colour)")
    rows = np.flatnonzero((ink > INK_FRACTION * ink.max()).any(axis=1))
    cols = np.flatnonzero((ink > INK_FRACTION * ink.max()).any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digit = 255.0 * digit / digit.max()

    scale = DIGIT_BOX / max(digit.shape)
    size = (max(1, round(digit.shape[1] * scale)), max(1, round(digit.shape[0] * scale)))
    patch = np.asarray(
        Image.fromarray(digit.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float64,
    )
    rows_grid, cols_grid = np.indices(patch.shape)
    mass = patch.sum()
    centre_row, centre_col = (rows_grid * patch).sum() / mass, (cols_grid * patch).sum() / mass
    top = round(float(MNIST_CENTRE - centre_row))
    left = round(float(MNIST_CENTRE - centre_col))
    top = min(max(top, 0), FRAME - patch.shape[0])
    left = min(max(left, 0), FRAME - patch.shape[1])
    frame = np.zeros((FRAME, FRAME), dtype=np.float64)
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def load_image(path: Path) -> np.ndarray:
    return to_mnist_format(read_grayscale(path), str(path))


def predict_images(model: object, images: np.ndarray, paths: list[str]) -> list[Prediction]:
    probabilities = model.predict(images, verbose=0)
    predictions = []
    for path, row in zip(paths, probabilities, strict=True):
        order = np.argsort(-row)[:3]
        predictions.append(
            Prediction(
                path=path,
                digit=int(order[0]),
                probability=float(row[order[0]]),
                top3=[(int(d), float(row[d])) for d in order],
            )
        )
    return predictions
