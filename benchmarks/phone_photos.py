"""Benchmark: phone photos of a digit on paper lying on a desk, read by `digits predict`.

Each photo is made from one MNIST digit with a known label, deterministically from a seed:

- the digit, upscaled (bicubic), its strokes made thicker or thinner (grey dilation or erosion)
  and slightly blurred, is dark ink on a light sheet of paper (paper grain and blotches);
- the sheet lies on a darker, textured surround (wood grain or mottled desk) that fills
  SURROUND_RANGE of the frame on one to four sides, so the sheet touches three, two, one or no
  edges of the frame; or (`sides` 0) the sheet is turned so that it touches all four edges and
  the desk shows in the corners;
- the sheet is seen in mild perspective (Image.transform PERSPECTIVE: corners moved by up to
  PERSPECTIVE_JITTER of the frame, turned by up to TILT_DEGREES);
- the light is uneven (a linear gradient and a vignette, multiplicative), the camera adds a
  slight blur and noise, and the file is a JPEG of quality JPEG_QUALITY;
- the inverse kind: a light chalk digit (broken, grainy strokes) on a dark board with chalk-dust
  smudges, inside a lighter surround.

The parameter ranges below were fixed before the reader was tuned on these photos. The reader
was developed on photos of training and validation digits; the result file is written once, for
photos of test digits:

    python benchmarks/phone_photos.py --split test --out benchmarks/results/phone_photos.json
    python benchmarks/phone_photos.py --contact-sheet benchmarks/results/phone_photos.png

Every photo goes through the same path as `digits predict`: written as a JPEG file, read by
`digits.predict.load_frames` and classified by `predict_images` with the pipeline's model. A
photo the reader refuses (a DigitsError) counts as wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

FRAME_SIZE = (800, 600)  # (long side, short side) in pixels; landscape or portrait at random
SURROUND_RANGE = (0.10, 0.60)  # share of the frame the surround fills
CORNER_SURROUND_RANGE = (0.10, 0.30)  # ...when the sheet touches all four edges (turned sheet)
CORNER_TILT_DEGREES = (10.0, 22.0)  # how far a sheet touching all edges is turned
TILT_DEGREES = 5.0  # other sheets are turned by up to this much either way
PERSPECTIVE_JITTER = 0.03  # sheet corners move by up to this share of the frame's size
DIGIT_SHARE = (0.35, 0.75)  # the 28x28 digit box's side, share of the sheet's visible part
PAPER_LEVEL = (175.0, 235.0)  # luma of the paper in full light
DESK_RATIO = (0.25, 0.65)  # desk luma over paper luma
INK_STRENGTH = (0.55, 0.85)  # share of the paper's light the ink absorbs
THICKNESS = (-2, 3)  # grey erosion (<0) or dilation (>0) of the strokes, pixels per 100 px digit
INK_BLUR = (0.4, 1.5)  # Gaussian sigma of the ink's edge, pixels
BOARD_LEVEL = (25.0, 70.0)  # luma of a chalkboard in full light
WALL_RATIO = (1.8, 3.5)  # luma of the surround over the board's (the inverse kind), at most 230
CHALK_STRENGTH = (0.6, 0.9)  # share of the way from the board to white the chalk reaches
GRADIENT = (0.0, 0.3)  # light falls by up to this share across the frame
VIGNETTE = (0.0, 0.3)  # ...and by up to this share in the corners
CAMERA_BLUR = (0.0, 1.0)  # Gaussian sigma, pixels
CAMERA_NOISE = (1.0, 4.0)  # standard deviation, grey levels
JPEG_QUALITY = (60, 92)
SIDES = (0, 1, 2, 3, 4)  # sides of the frame the surround covers; 0: only the corners
SIDE_NAMES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class Photo:
    """What one generated photo shows: its label and the settings drawn for it."""

    label: int
    sides: int  # how many sides of the frame the surround covers (0: only the corners)
    covered: str  # which sides, e.g. "left+top", or "corners"
    inverse: bool  # chalk on a dark board (light digit) instead of ink on paper
    surround: float  # share of the frame the surround fills, as rendered
    texture: str  # "wood" or "mottled"
    size: tuple[int, int]  # (width, height)
    jpeg_quality: int


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation, float64 `shape`."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field / (field.std() or 1.0)


def _perspective(frame_quad: np.ndarray, canvas: tuple[int, int]) -> tuple[float, ...]:
    """Image.transform PERSPECTIVE data mapping frame pixels to the flat sheet `canvas` (w, h).

    `frame_quad` is 4 x 2: where the canvas corners (top-left, top-right, bottom-right,
    bottom-left) appear in the frame. Solves the 8 equations of the homography.
    """
    width, height = canvas
    flat = [(0, 0), (width, 0), (width, height), (0, height)]
    rows, values = [], []
    for (x, y), (u, v) in zip(frame_quad, flat, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values.extend([u, v])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(values)))


def _to_canvas(coefficients: tuple[float, ...], points: np.ndarray) -> np.ndarray:
    """Frame points (n x 2) mapped onto the flat sheet by PERSPECTIVE `coefficients`."""
    a, b, c, d, e, f, g, h = coefficients
    x, y = points[:, 0], points[:, 1]
    w = g * x + h * y + 1
    return np.stack([(a * x + b * y + c) / w, (d * x + e * y + f) / w], axis=1)


def _rotated(quad: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    angle = math.radians(degrees)
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (quad - centre) @ turn.T + centre


def _side_margins(rng: np.random.Generator, covered: list[int], share: float) -> np.ndarray:
    """Margins (left, top, right, bottom; share of width or height) whose strips fill `share`.

    Uncovered sides get a negative margin: the sheet runs past that edge of the frame.
    """
    weights = np.zeros(4)
    weights[covered] = rng.dirichlet(np.full(len(covered), 2.0)) + 0.15
    low, high = 0.0, 1.0
    for _ in range(50):  # bisection on the scale: 1 - (1 - l - r)(1 - t - b) = share
        scale = (low + high) / 2
        m = scale * weights
        filled = 1 - (1 - m[0] - m[2]) * (1 - m[1] - m[3])
        low, high = (scale, high) if filled < share else (low, scale)
    margins = low * weights
    margins[[i for i in range(4) if i not in covered]] = -0.2
    return margins


def _sheet_quad(rng: np.random.Generator, sides: int, size: tuple[int, int]) -> np.ndarray:
    """Where the sheet's corners are in the frame (4 x 2, clockwise from top-left)."""
    width, height = size
    centre = np.array([width / 2, height / 2])
    if sides == 0:
        share = _uniform(rng, CORNER_SURROUND_RANGE)
        tilt = _uniform(rng, CORNER_TILT_DEGREES) * rng.choice([-1, 1])
        scale = 1.0
        for _ in range(12):  # the sheet's size that leaves about `share` in the corners
            quad = _rotated(_box_quad(centre, width * scale, height * scale), tilt, centre)
            scale *= math.sqrt((1 - share) / max(1 - _outside_share(quad, size), 1e-3))
    else:
        covered = sorted(rng.choice(4, size=sides, replace=False).tolist())
        share = _uniform(rng, SURROUND_RANGE)
        left, top, right, bottom = _side_margins(rng, covered, share)
        quad = np.array(
            [
                [left * width, top * height],
                [(1 - right) * width, top * height],
                [(1 - right) * width, (1 - bottom) * height],
                [left * width, (1 - bottom) * height],
            ]
        )
        quad = _rotated(quad, _uniform(rng, (-TILT_DEGREES, TILT_DEGREES)), centre)
    jitter = rng.uniform(-PERSPECTIVE_JITTER, PERSPECTIVE_JITTER, size=(4, 2))
    return quad + jitter * np.array([width, height])


def _box_quad(centre: np.ndarray, width: float, height: float) -> np.ndarray:
    half = np.array([width / 2, height / 2])
    return centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])


def _outside_share(quad: np.ndarray, size: tuple[int, int]) -> float:
    """The share of the frame outside the quadrilateral (drawn at a quarter of the size)."""
    small = (size[0] // 4, size[1] // 4)
    mask = Image.new("L", small, 0)
    ImageDraw.Draw(mask).polygon([tuple(p / 4) for p in quad], fill=255)
    return 1 - float(np.asarray(mask).mean()) / 255


def _visible_box(coefficients: tuple[float, ...], canvas: tuple[int, int], size: tuple[int, int]):
    """(left, top, right, bottom) of the flat sheet that is in the frame, inset by 8%."""
    width, height = size
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    seen = _to_canvas(coefficients, corners)
    left = max(0.0, seen[0, 0], seen[3, 0])
    right = min(float(canvas[0]), seen[1, 0], seen[2, 0])
    top = max(0.0, seen[0, 1], seen[1, 1])
    bottom = min(float(canvas[1]), seen[2, 1], seen[3, 1])
    inset = 0.08 * min(right - left, bottom - top)
    return left + inset, top + inset, right - inset, bottom - inset


def _stroke_coverage(rng: np.random.Generator, digit: np.ndarray, side: int) -> np.ndarray:
    """The MNIST digit as ink coverage in [0, 1], `side` x `side`, thickened or thinned, blurred."""
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    coverage = np.asarray(big, dtype=np.float64) / 255
    change = round(rng.uniform(*THICKNESS) * side / 100)
    if change > 0:
        coverage = ndimage.grey_dilation(coverage, size=(change + 1, change + 1))
    elif change < 0:
        coverage = ndimage.grey_erosion(coverage, size=(1 - change, 1 - change))
    coverage = ndimage.gaussian_filter(coverage, _uniform(rng, INK_BLUR))
    return np.clip(coverage * 1.15, 0, 1)


def _sheet_canvas(
    rng: np.random.Generator, digit: np.ndarray, canvas: tuple[int, int], box, inverse: bool
) -> tuple[np.ndarray, float]:
    """The flat sheet (or board) with the digit on it: RGB float64 (h, w, 3), and its luma."""
    width, height = canvas
    if inverse:
        level = _uniform(rng, BOARD_LEVEL)
        tint = np.array([0.9, 1.05, 0.95]) if rng.random() < 0.5 else np.ones(3)
        dust = np.clip(_smooth_noise(rng, (height, width), 25.0), 0, None)
        base = level * (1 + 0.08 * _smooth_noise(rng, (height, width), 40.0)) + 10 * dust
    else:
        level = _uniform(rng, PAPER_LEVEL)
        tint = np.array([1.0, 0.99, 0.95]) if rng.random() < 0.5 else np.array([0.98, 1.0, 1.02])
        base = level * (1 + 0.03 * _smooth_noise(rng, (height, width), 30.0))
    base = base + rng.normal(0, 1.5, (height, width))
    left, top, right, bottom = box
    available = min(right - left, bottom - top)
    side = max(40, round(_uniform(rng, DIGIT_SHARE) * available))
    x0 = round(rng.uniform(left, max(left, right - side)))
    y0 = round(rng.uniform(top, max(top, bottom - side)))
    coverage = np.zeros((height, width))
    stroke = _stroke_coverage(rng, digit, side)
    region = coverage[y0 : y0 + side, x0 : x0 + side]
    region[...] = stroke[: region.shape[0], : region.shape[1]]
    if inverse:
        grain = ndimage.gaussian_filter(rng.random((height, width)), 0.8)
        broken = np.clip((grain - 0.5) * 6 + 0.5, 0.55, 1.0)
        light = _uniform(rng, CHALK_STRENGTH) * (235 - base) * broken
        luma = base + coverage * light
    else:
        absorb = _uniform(rng, INK_STRENGTH) * (1 - 0.1 * _smooth_noise(rng, (height, width), 8))
        luma = base * (1 - coverage * np.clip(absorb, 0, 0.95))
    return luma[..., None] * tint, level


def _surround(rng: np.random.Generator, size: tuple[int, int], level: float, inverse: bool):
    """The desk (or wall) around the sheet: RGB float64 (h, w, 3) and its texture's name."""
    width, height = size
    if inverse:
        luma = min(230.0, level * _uniform(rng, WALL_RATIO))
    else:
        luma = level * _uniform(rng, DESK_RATIO)
    texture = "wood" if rng.random() < 0.5 else "mottled"
    if texture == "wood":
        y, x = np.mgrid[0:height, 0:width].astype(np.float64)
        angle = rng.uniform(0, math.pi)
        along = x * math.cos(angle) + y * math.sin(angle)
        along += 25 * _smooth_noise(rng, (height, width), 60.0)
        grain = np.sin(2 * math.pi * along / _uniform(rng, (8.0, 40.0)))
        field = 0.12 * grain + 0.05 * _smooth_noise(rng, (height, width), 2.0)
        colour = np.array([1.15, 0.95, 0.7])
    else:
        field = 0.08 * _smooth_noise(rng, (height, width), 6.0)
        field += 0.06 * _smooth_noise(rng, (height, width), 1.0)
        colour = np.array([1.0, 1.0, 1.05]) if rng.random() < 0.5 else np.array([1.1, 1.0, 0.85])
    return (luma * (1 + field))[..., None] * colour, texture


def _lighting(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Multiplicative light in (0, 1], float64 (h, w): a linear gradient times a vignette."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = x / width - 0.5, y / height - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    across = (x * math.cos(angle) + y * math.sin(angle)) / math.sqrt(0.5) + 0.5
    gradient = 1 - _uniform(rng, GRADIENT) * np.clip(across, 0, 1)
    vignette = 1 - _uniform(rng, VIGNETTE) * (x**2 + y**2) / 0.5
    return gradient * vignette


def make_photo(digit: np.ndarray, label: int, seed: int, sides: int, inverse: bool):
    """One photo of `digit` (28x28 uint8, MNIST format) as JPEG bytes, and what it shows.

    Deterministic in (`digit`, `seed`, `sides`, `inverse`). `sides` 1-4: the surround covers
    that many sides of the frame; 0: the sheet touches all four edges, the surround only shows
    in the corners.
    """
    rng = np.random.default_rng(seed)
    size = FRAME_SIZE if rng.random() < 0.5 else FRAME_SIZE[::-1]
    quad = _sheet_quad(rng, sides, size)
    sheet_size = np.ptp(quad, axis=0)
    canvas = (max(1, round(sheet_size[0])), max(1, round(sheet_size[1])))
    coefficients = _perspective(quad, canvas)
    box = _visible_box(coefficients, canvas, size)
    flat, level = _sheet_canvas(rng, digit, canvas, box, inverse)
    mask = Image.new("F", canvas, 1.0).transform(size, Image.Transform.PERSPECTIVE, coefficients)
    alpha = np.asarray(mask, dtype=np.float64)[..., None]
    warped = np.stack(
        [
            np.asarray(
                Image.fromarray(flat[..., c].astype(np.float32), "F").transform(
                    size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
                )
            )
            for c in range(3)
        ],
        axis=-1,
    )
    desk, texture = _surround(rng, size, level, inverse)
    scene = alpha * warped + (1 - alpha) * desk
    scene *= _lighting(rng, size)[..., None]
    scene = ndimage.gaussian_filter(scene, (*(2 * [_uniform(rng, CAMERA_BLUR)]), 0))
    scene += rng.normal(0, _uniform(rng, CAMERA_NOISE), scene.shape)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(scene), 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=quality
    )
    covered = "corners"
    if sides:
        covered = "+".join(n for n, m in zip(SIDE_NAMES, _covered(quad, size), strict=True) if m)
    photo = Photo(
        label=label,
        sides=sides,
        covered=covered,
        inverse=inverse,
        surround=round(1 - float(alpha.mean()), 4),
        texture=texture,
        size=size,
        jpeg_quality=quality,
    )
    return buffer.getvalue(), photo


def _covered(quad: np.ndarray, size: tuple[int, int]) -> list[bool]:
    """Whether the sheet stays clear of each edge (left, top, right, bottom) of the frame."""
    width, height = size
    return [
        quad[:, 0].min() > 0,
        quad[:, 1].min() > 0,
        quad[:, 0].max() < width,
        quad[:, 1].max() < height,
    ]


KINDS = [(sides, inverse) for inverse in (False, True) for sides in SIDES]


def kind_name(sides: int, inverse: bool) -> str:
    where = "corners" if sides == 0 else f"{sides}_side{'s' if sides > 1 else ''}"
    return f"{'chalk' if inverse else 'ink'}_{where}"


def photos(images: np.ndarray, labels: np.ndarray, count: int, seed: int):
    """`count` photos, the kinds in turn, of the first `count` digits: (bytes, Photo) pairs."""
    for index, (sides, inverse) in zip(range(count), itertools.cycle(KINDS)):
        yield make_photo(images[index], int(labels[index]), seed + index, sides, inverse)


def split_digits(split: str, prepared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The split's images and labels: data/prepared/{split}.npz, or MNIST itself if absent."""
    from digits.data import load_split

    path = prepared / f"{split}.npz"
    if path.is_file():
        data = load_split(path)
        return data.images, data.labels
    from digits.mnist import load_mnist

    mnist = load_mnist(report=lambda line: None)
    if split == "test":
        return mnist.test_images, mnist.test_labels
    return mnist.train_images, mnist.train_labels


def shuffled(images: np.ndarray, labels: np.ndarray, seed: int):
    order = np.random.default_rng(seed).permutation(len(labels))
    return images[order], labels[order]


def contact_sheet(images: np.ndarray, labels: np.ndarray, out: Path, seed: int) -> None:
    """Two photos of every kind (rows: ink, ink, chalk, chalk; columns: sides 0-4) as a PNG."""
    thumb = 200
    sheet = Image.new("RGB", (len(SIDES) * (thumb + 10) + 10, 4 * (thumb + 30) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    for row, column in itertools.product(range(4), range(len(SIDES))):
        index = row * len(SIDES) + column
        data, photo = make_photo(
            images[index], int(labels[index]), seed + index, SIDES[column], row >= 2
        )
        image = Image.open(io.BytesIO(data))
        image.thumbnail((thumb, thumb))
        x, y = 10 + column * (thumb + 10), 10 + row * (thumb + 30)
        sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
        caption = f"{kind_name(photo.sides, photo.inverse)}: {photo.label}, {photo.surround:.0%}"
        draw.text((x, y + thumb + 5), caption, fill="black")
    from digits.files import atomic_path

    with atomic_path(out) as temporary:
        sheet.save(temporary, "PNG")


def read_photos(model_path: Path, items: list[tuple[bytes, Photo]]) -> list[dict]:
    """Each photo written as a JPEG file, read and classified as `digits predict` does it."""
    from digits.errors import DigitsError
    from digits.model import load_model
    from digits.predict import load_frames, predict_images

    rows, images, sources, where = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for index, (data, photo) in enumerate(items):
            path = Path(folder) / f"photo_{index}.jpg"
            path.write_bytes(data)
            [(source, result)] = load_frames(path)
            row = {"index": index, **asdict(photo), "kind": kind_name(photo.sides, photo.inverse)}
            if isinstance(result, DigitsError):
                row.update(predicted=None, refused=str(result).replace(str(path), "photo"))
            else:
                images.append(result)
                sources.append(source)
                where.append(len(rows))
            rows.append(row)
    if images:
        predictions = predict_images(load_model(model_path), np.stack(images), sources)
        for position, prediction in zip(where, predictions, strict=True):
            rows[position].update(predicted=prediction.digit, probability=prediction.probability)
    return rows


def summary(rows: list[dict]) -> dict:
    """Accuracy (a refusal is wrong) and refusal rate over all photos and per kind."""

    def scores(group: list[dict]) -> dict:
        right = sum(r["predicted"] == r["label"] for r in group)
        refused = sum(r["predicted"] is None for r in group)
        return {
            "photos": len(group),
            "accuracy": round(right / len(group), 4),
            "refusal_rate": round(refused / len(group), 4),
        }

    by = {
        "kind": lambda r: r["kind"],
        "sides": lambda r: str(r["sides"]),
        "inverse": lambda r: "chalk" if r["inverse"] else "ink",
        "texture": lambda r: r["texture"],
    }
    result = {"all": scores(rows)}
    for name, key in by.items():
        groups: dict[str, list[dict]] = {}
        for row in rows:
            groups.setdefault(key(row), []).append(row)
        result[f"by_{name}"] = {k: scores(v) for k, v in sorted(groups.items())}
    return result


def parameters() -> dict:
    """The generator's fixed parameter ranges, as recorded with a result."""
    names = [n for n in globals() if n.isupper() and n not in ("KINDS",)]
    return {n: globals()[n] for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "val", "test"), default="val")
    parser.add_argument("--count", type=int, default=1000, help="photos (kinds in turn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--out", type=Path, help="result JSON")
    parser.add_argument("--contact-sheet", type=Path, help="write a PNG of samples instead")
    args = parser.parse_args()
    images, labels = shuffled(*split_digits(args.split, args.prepared), args.seed)
    if args.contact_sheet:
        contact_sheet(images, labels, args.contact_sheet, args.seed)
        return
    if not args.model.is_file():
        raise SystemExit(f"phone_photos: --model {args.model}: not found; run `dvc repro train`")
    from digits import runtime
    from digits.files import write_json

    started = time.perf_counter()
    rows = read_photos(args.model, list(photos(images, labels, args.count, args.seed)))
    result = {
        "split": args.split,
        "seed": args.seed,
        "summary": summary(rows),
        "model": str(args.model),
        "model_md5": hashlib.md5(args.model.read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - started, 1),
        "generator": parameters(),
        "wrong": [r for r in rows if r["predicted"] != r["label"]],
        "environment": runtime.environment(),
    }
    print(json.dumps(result["summary"]["all"]), json.dumps(result["summary"]["by_kind"]))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
