"""The fifteen corruptions of MNIST-C, applied to 28x28 uint8 digit images.

MNIST-C: Mu and Gilmer (2019), "MNIST-C: A Robustness Benchmark for Computer Vision",
arXiv:1906.02337. Each corruption is written here from the paper's description, at the one
severity the benchmark uses (the parameters of the authors' generator): shot noise, impulse
noise, glass blur, motion blur, shear, scale, rotate, brightness, translate, stripe, fog,
spatter, dotted line, zigzag and canny edges. Filters, warps, salt-and-pepper noise and edge
detection are scikit-image's; the fog's plasma fractal is the diamond-square
algorithm (Fournier, Fussell and Carpenter (1982), "Computer rendering of stochastic models",
CACM).

`corrupt(images, name, seed)` is deterministic: the same images, name and seed give the same
bytes. Images go in and come out as N x 28 x 28 uint8 (rounded, clipped to 0..255), the
pipeline's format, so a model scores them as it scores MNIST.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.feature import canny
from skimage.filters import gaussian
from skimage.transform import warp
from skimage.util import random_noise

SIDE = 28
CENTRE = (SIDE - 1) / 2  # 13.5: the pixel-grid centre every warp keeps in place


def shot_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: each pixel a Poisson count of mean 3 x intensity, over 3."""
    return np.clip(rng.poisson(x * 3) / 3, 0, 1)


def impulse_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise on 17% of the pixels (half white, half black)."""
    return random_noise(x, mode="s&p", amount=0.17, rng=rng)


def glass_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma 0.7 px), two sweeps that swap each interior pixel, with probability
    1/2, with its neighbour up and/or left (offsets drawn from {-1, 0}, as the generator's), then
    the same blur again."""
    x = gaussian(x, sigma=0.7)
    for _ in range(2):
        swaps = rng.integers(0, 2, size=(SIDE - 2, SIDE - 2)).astype(bool)
        offsets = rng.integers(-1, 1, size=(SIDE - 2, SIDE - 2, 2))
        for i, h in enumerate(range(SIDE - 1, 1, -1)):
            for j, w in enumerate(range(SIDE - 1, 1, -1)):
                if swaps[i, j]:
                    dx, dy = offsets[i, j]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
    return np.clip(gaussian(x, sigma=0.7), 0, 1)


def motion_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur at radius 10, sigma 3 and an angle drawn in [-45, 45] degrees:
    each pixel a one-sided Gaussian-weighted mean (weights exp(-i^2 / 2 sigma^2), i = 0..20) of
    the pixels i steps along the angle, rounded to the grid; edge pixels repeat outside."""
    angle = np.radians(rng.uniform(-45, 45))
    steps = np.arange(21)
    weights = np.exp(-(steps**2) / (2 * 3.0**2))
    rows = np.rint(steps * np.sin(angle)).astype(int)
    cols = np.rint(steps * np.cos(angle)).astype(int)
    padded = np.pad(x, 20, mode="edge")
    blurred = sum(
        weight * padded[20 + dy : 20 + dy + SIDE, 20 + dx : 20 + dx + SIDE]
        for weight, dy, dx in zip(weights / weights.sum(), rows, cols, strict=True)
    )
    return np.clip(blurred, 0, 1)


def _warp_about_centre(x: np.ndarray, linear: np.ndarray, shift: tuple[float, float] = (0, 0)):
    """`x` resampled (bilinear, zero outside) through the output -> input map `linear` (2 x 2,
    acting on (column, row)) about the image centre, plus `shift` (columns, rows)."""
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = CENTRE * (1 - linear.sum(axis=1)) + np.asarray(shift)
    return np.clip(warp(x, matrix, order=1, mode="constant", cval=0.0), 0, 1)


def _sign(rng: np.random.Generator) -> int:
    return int(rng.choice([-1, 1]))


def shear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A horizontal shear of 0.4 rad, either way."""
    angle = 0.4 * _sign(rng)
    return _warp_about_centre(x, np.array([[1, -np.sin(angle)], [0, np.cos(angle)]]))


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit shrunk to 0.7 of its size about the centre (no randomness)."""
    return _warp_about_centre(x, np.eye(2) / 0.7)


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation of 0.4 rad (23 degrees) about the centre, either way."""
    angle = 0.4 * _sign(rng)
    cos, sin = np.cos(angle), np.sin(angle)
    return _warp_about_centre(x, np.array([[cos, -sin], [sin, cos]]))


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shift of 3 px both horizontally and vertically, each either way."""
    return _warp_about_centre(x, np.eye(2), (3 * _sign(rng), 3 * _sign(rng)))


def brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on HSV value, which for a grey image is +0.5 on every intensity, clipped."""
    return np.clip(x + 0.5, 0, 1)


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensities inverted in the left and right quarters (columns 0-6 and 21-27)."""
    x = x.copy()
    x[:, :7], x[:, 21:] = 1 - x[:, :7], 1 - x[:, 21:]
    return x


def plasma_fractal(rng: np.random.Generator, size: int = 256, decay: float = 1.4) -> np.ndarray:
    """A size x size (power of two) diamond-square height map in [0, 1] that wraps around; the
    noise added at each level shrinks by decay^2 (MNIST-C's generator)."""
    height = np.zeros((size, size))
    step, amplitude = size, 1.0
    while step >= 2:
        half = step // 2
        corners = height[::step, ::step]
        around = corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1)
        around += np.roll(corners, (-1, -1), (0, 1))
        height[half::step, half::step] = around / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        centres = height[half::step, half::step]
        top = corners + np.roll(corners, -1, 1) + centres + np.roll(centres, 1, 0)
        height[::step, half::step] = top / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        left = corners + np.roll(corners, -1, 0) + centres + np.roll(centres, 1, 1)
        height[half::step, ::step] = left / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        step, amplitude = half, amplitude / decay**2
    height -= height.min()
    return height / height.max()


def fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """3 x a plasma fractal's 28 x 28 corner added, then rescaled so the digit's brightest pixel
    keeps its share: x' = (x + 3 p) max(x) / (max(x) + 3)."""
    peak = x.max()
    return np.clip((x + 3 * plasma_fractal(rng)[:SIDE, :SIDE]) * peak / (peak + 3), 0, 1)


def spatter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mud: Gaussian noise (mean 0.65, sd 0.3) blurred (sigma 1), kept above 0.65, its mask
    blurred (sigma 1.5) and kept above 0.8 as blobs of grey 63/255 over the digit."""
    liquid = gaussian(rng.normal(0.65, 0.3, size=x.shape), sigma=1)
    mask = gaussian((liquid > 0.65).astype(float), sigma=1.5)
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1)


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """A 28 x 28 stroke from (column, row) (c0, r0) to (c1, r1), c0 < c1: intensity
    1 + ln(1 - d / 2.3) at vertical distance d from the line (0 beyond ~1.45 px), over columns
    floor(c0) .. ceil(c1) - 1."""
    cols, rows = np.meshgrid(np.arange(SIDE), np.arange(SIDE), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    stroke = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    stroke[:, : int(np.floor(c0))] = 0
    stroke[:, int(np.ceil(c1)) :] = 0
    return stroke


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A straight line across the image (rows at both edges drawn in 0..26) with every other
    2-column run removed."""
    r0, r1 = rng.integers(0, SIDE - 1, size=2)
    stroke = _line(0, r0, SIDE - 1, r1)
    for start in range(0, SIDE, 4):
        stroke[:, start : start + 2] = 0
    return np.clip(x + stroke, 0, 1)


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag (segments 2 px along, 2 px either side) from column 2 to 25, starting at a row
    drawn in 0..26 and rising or falling by up to 5 rows."""
    r0 = int(rng.integers(0, SIDE - 1))
    r1 = r0 + int(rng.integers(-5, 5))
    theta = np.arctan((r1 - r0) / (25 - 2))
    length = (25 - 2) / np.cos(theta)
    along = np.concatenate([[0.0], np.arange(2.0, length, 4.0), [length]])
    across = np.concatenate([[0.0], 2.0 * (-1.0) ** np.arange(len(along) - 2), [0.0]])
    cols = 2 + along * np.cos(theta) - across * np.sin(theta)
    rows = r0 + along * np.sin(theta) + across * np.cos(theta)
    for i in range(1, len(cols)):
        if cols[i] != cols[i - 1]:
            x = np.clip(x + _line(cols[i - 1], rows[i - 1], cols[i], rows[i]), 0, 1)
    return x


def canny_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit replaced by its Canny edges (scikit-image, sigma 1): white edges on black."""
    return canny(x).astype(float)


CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    function.__name__: function
    for function in (
        shot_noise, impulse_noise, glass_blur, motion_blur, shear, scale, rotate, brightness,
        translate, stripe, fog, spatter, dotted_line, zigzag, canny_edges,
    )
}  # fmt: skip


def corrupt(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """`images` (N x 28 x 28 uint8) with corruption `name` applied to each: N x 28 x 28 uint8.

    The random draws come from one generator seeded by (seed, the corruption's place in
    `CORRUPTIONS`), image after image, so the result depends on the seed and the images' order.
    Raises KeyError for a name not in `CORRUPTIONS`.
    """
    function = CORRUPTIONS[name]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    corrupted = np.empty(images.shape, dtype=np.uint8)
    for i, image in enumerate(images):
        result = function(image.astype(np.float64) / 255, rng)
        corrupted[i] = np.clip(np.rint(result * 255), 0, 255).astype(np.uint8)
    return corrupted
