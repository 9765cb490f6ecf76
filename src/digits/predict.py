"""Classify digit images from files: any size, mode, polarity, orientation or number of frames.

Images are brought to MNIST's own format the way the dataset was made (LeCun et al., "The MNIST
database"): a light digit on black, cropped to the digit, scaled to fit 20x20 keeping the aspect
ratio, and placed in a 28x28 frame so that its centre of mass sits at the centre. Before that, each
frame is shown the way a viewer shows it (EXIF orientation applied, 16-bit and float pixels scaled
by their bit depth, transparency resolved), and the digit is found in the image as a whole: the
paper is its commonest level, evened out for uneven lighting; the ink is what stands out of it on
the far side; and the digit is the largest connected piece of ink with the pieces beside it,
specks dropped. In a photo of a sheet lying on a desk (or a board on a wall), the digit is read on
the sheet alone: the largest light (or dark) region, convex, with a surround of another level.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from scipy import ndimage
from scipy.spatial import ConvexHull

from digits.errors import DigitsError
from digits.files import atomic_write_bytes

MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_FRAMES = 100
DIGIT_BOX = 20
FRAME = 28
MNIST_CENTRE = 14  # where MNIST digits have their centre of mass (row and column), measured
WORK_SIDE = 2048  # larger images are searched for the digit at this size (area-averaged)
BACKGROUND_SIDE = 256  # the paper is estimated on a copy at most this many pixels a side
ELEMENT_FRACTION = 0.5  # strokes narrower than this share of the image's shorter side are ink
NOISE_FLOOR = 0.5  # grey levels: the least noise assumed, so a synthetic flat image has some
MIN_CONTRAST = 0.04  # of full scale (about 10 of 255 grey levels): fainter marks are not ink
NOISE_MARGIN = 6.0  # ink must stand this many noise standard deviations out of the paper
INK_FRACTION = 0.25  # a pixel is the core of a stroke above this share of the strongest ink
EDGE_FRACTION = 0.05  # ...and belongs to the stroke (its anti-aliased edge) above this share
SPECK_FRACTION = 0.05  # a piece with less ink than this share of the largest piece is a speck
PIECE_PEAK = 0.5  # ...and one whose strongest ink is under this share of the peak is shading
NEAR_FRACTION = 0.5  # pieces this far (share of the digit's size) beside the digit belong to it
STROKE_FRACTION = 0.1  # after scaling to 20x20, pixels above this share of the maximum are ink
SATURATED_PERCENTILE = 90  # ...and the top 10% of them are full white, as in MNIST
MIN_DIGIT_PIXELS = 10  # ink whose strokes span fewer pixels than this (either way) is a speck
UNIFORM_COLOUR = 12.0  # grey levels: visible colour this even means the shape is in the alpha
LOW_CONFIDENCE = 0.6  # a top probability below this is reported as "may not be a digit"
FULL_SCALES = (1.0, 255.0, 65_535.0)  # white for 32-bit integer and float pixels, see _scaled
SHEET_MIN = 0.3  # a sheet of paper fills at least this share of a photo
SHEET_FULL = 0.97  # ...and a region filling this share leaves no surround to cut off
SHEET_MARGIN = 0.02  # share of the image's shorter side cut off the sheet's edge
SHEET_SOLIDITY = 0.9  # a sheet (a quadrilateral, cut by the frame) fills this much of its hull
SHEET_NOISE = 0.1  # a sheet this noisy (share of full scale) is no plain paper or board
SHEET_CONTRAST = 12.0  # noise deviations: ink on a sheet stands out this far (wood grain less)
SHEET_OWN = 0.7  # a sheet is mostly of its own level, the digit on it a small part
SHEET_ALIKE = 0.2  # ...and at most this share of the frame's edge beyond it is as light (or dark)
BLOB_WIDTH = 0.5  # a shape whose widest stroke is this share of its size...
BLOB_FILL = 0.75  # ...and that fills this share of its box is a solid shape, not pen strokes
STDIN = "-"  # the input name that reads one image from standard input
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # scheme://, as in https://...
# Major brands of the ISO base media file's `ftyp` box that mark a HEIF image (ISO/IEC 23008-12):
# HEVC-coded stills and sequences (the iPhone's HEIC) and the generic image brands.
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1"}
HEIF_SUFFIXES = {".heic", ".heif", ".hif"}
LISTED_SKIPS = 10  # a note on skipped files names at most this many


@dataclass(frozen=True)
class Source:
    """Where a classified image came from: a file (or `-`, standard input), and its frame
    (1-based) in a multi-frame file."""

    path: str
    frame: int | None = None  # None for a file with one frame

    @property
    def name(self) -> str:
        path = "<stdin>" if self.path == STDIN else self.path
        return path if self.frame is None else f"{path}[frame {self.frame}]"


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image; below LOW_CONFIDENCE it may not be a digit at all."""

    source: Source
    digit: int
    probability: float
    top3: list[tuple[int, float]]

    @property
    def low_confidence(self) -> bool:
        return self.probability < LOW_CONFIDENCE

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.source.path,
            "frame": self.source.frame,
            "digit": self.digit,
            "probability": round(self.probability, 4),
            "top3": [{"digit": d, "probability": round(p, 4)} for d, p in self.top3],
            "low_confidence": self.low_confidence,
        }

    def line(self) -> str:
        others = ", ".join(f"{d} {p:.3f}" for d, p in self.top3)
        warning = "; low confidence: may not be a digit" if self.low_confidence else ""
        digit = f"{self.digit} ({self.probability:.3f})"
        return f"{self.source.name}: {digit}; top 3: {others}{warning}"


Frames = list[tuple[Source, np.ndarray | DigitsError]]


def read_inputs(names: Sequence[str], stdin: BinaryIO | None = None) -> tuple[Frames, list[str]]:
    """Every frame of every input, in input order (see `load_frames`), and notes on what was left
    out, one line each.

    An input is an image file; a folder, whose image files (by suffix: those Pillow opens, and
    HEIF) are read in name order while its other entries are left out and named in a note; or
    `-`, one image read from `stdin` (its bytes). A URL, an empty or unreadable folder, and `-`
    with nothing piped in get an error in their place.
    """
    frames: Frames = []
    notes: list[str] = []
    for name in names:
        if name == STDIN:
            frames += _stdin_frames(stdin)
            stdin = None  # read once: a second `-` has nothing left
        elif URL.match(name):
            error = f"{name}: a URL, not a file: download it first (curl -o digit.png '{name}')"
            frames.append((Source(name), DigitsError(error)))
        elif Path(name).is_dir():
            images, note = _folder(Path(name))
            notes += [note] if note else []
            frames += [frame for path in images for frame in load_frames(path)] or [
                (Source(name), DigitsError(f"{name}: no image files in this folder"))
            ]
        else:
            frames += load_frames(Path(name))
    return frames, notes


def _stdin_frames(stdin: BinaryIO | None) -> Frames:
    """The frames of one image read from `stdin` (at most MAX_FILE_BYTES + 1 bytes)."""
    fix = "pipe one image into it, e.g. `digits predict - < digit.png`"
    if stdin is None:
        return [(Source(STDIN), DigitsError(f"<stdin>: standard input is already read: {fix}"))]
    if stdin.isatty():
        return [(Source(STDIN), DigitsError(f"<stdin>: standard input is a terminal: {fix}"))]
    data = stdin.read(MAX_FILE_BYTES + 1)
    if not data:
        return [(Source(STDIN), DigitsError(f"<stdin>: nothing came on standard input: {fix}"))]
    return load_frames(STDIN, data)


def _folder(folder: Path) -> tuple[list[Path], str | None]:
    """The image files in `folder`, sorted by name, and a note naming what else is there.

    An image file is one whose suffix Pillow opens (or a HEIF suffix, so that a HEIC photo
    without pillow-heif gets its own error); hidden files are left out too. Raises DigitsError
    when the folder cannot be listed.
    """
    extensions = {s for s, f in Image.registered_extensions().items() if f in Image.OPEN}
    images, skipped = [], []
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as error:
        raise DigitsError(f"{folder}: cannot list the folder ({error.strerror})") from None
    for entry in entries:
        suffix = entry.suffix.lower()
        is_image = suffix in extensions or suffix in HEIF_SUFFIXES
        if entry.is_file() and is_image and not entry.name.startswith("."):
            images.append(entry)
        else:
            skipped.append(entry.name + ("/" if entry.is_dir() else ""))
    if not skipped:
        return images, None
    listed = ", ".join(skipped[:LISTED_SKIPS])
    more = f" and {len(skipped) - LISTED_SKIPS} more" if len(skipped) > LISTED_SKIPS else ""
    count = f"{len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'}"
    return images, f"{folder}: skipped {count} that are not image files: {listed}{more}"


def load_frames(
    path: Path | str, data: bytes | None = None
) -> list[tuple[Source, np.ndarray | DigitsError]]:
    """Every frame of an image file in MNIST format, or the error that frame (or file) ran into.

    The image is the file at `path`, or `data` (its bytes; `path` then only names it, as `-`
    names standard input). Returns one `(source, result)` per frame, in file order; `result` is
    a 28x28 uint8 array (a light digit on black, as in MNIST) or a `DigitsError` naming the
    problem: no such file, an empty, too large or undecodable file, a HEIF image without
    pillow-heif, more than MAX_FRAMES frames (one entry for the file), or a frame with no digit
    in it (one entry for that frame; the other frames are still read).
    """
    try:
        with _open(path, data) as image:
            count = getattr(image, "n_frames", 1)
            if count > MAX_FRAMES:
                raise DigitsError(
                    f"{path}: {count} frames is too many (limit {MAX_FRAMES}); split the file"
                )
            results: list[tuple[Source, np.ndarray | DigitsError]] = []
            for index, frame in enumerate(ImageSequence.Iterator(image), start=1):
                source = Source(str(path), index if count > 1 else None)
                try:
                    results.append((source, to_mnist_format(frame_grayscale(frame), source.name)))
                except DigitsError as error:
                    results.append((source, error))
                except _DECODE_ERRORS as error:
                    results.append((source, _unreadable(source.name, error)))
            return results
    except DigitsError as error:
        return [(Source(str(path)), error)]
    except _DECODE_ERRORS as error:
        return [(Source(str(path)), _unreadable(Source(str(path)).name, error))]


_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)


def _unreadable(name: str, error: BaseException) -> DigitsError:
    detail = str(error)
    if isinstance(error, UnidentifiedImageError):  # its message names the in-memory buffer
        detail = "not in any image format Pillow reads"
    return DigitsError(f"{name}: not a readable image ({detail}); save it as PNG or JPEG")


def _open(path: Path | str, data: bytes | None = None) -> Image.Image:
    """The opened image of the file at `path`, or of `data` (its bytes) when given; raises
    DigitsError for a missing, empty or too large file, or a HEIF image without pillow-heif."""
    name = Source(str(path)).name
    if data is None:
        path = Path(path)
        if not path.is_file():
            raise DigitsError(f"{path}: no such file")
        size = path.stat().st_size
    else:
        size = len(data)
    if size == 0:
        raise DigitsError(f"{name}: the file is empty")
    if size > MAX_FILE_BYTES:
        amount = f"{size:,} bytes" if data is None else "more than 50 MiB"
        raise DigitsError(f"{name}: {amount} is too large for a digit image (limit 50 MiB)")
    # From memory, not the path: Pillow 13 memory-maps raw TIFF strips by the size it reports,
    # which is already turned upright for EXIF orientations 5-8, so the pixels come out garbled.
    data = Path(path).read_bytes() if data is None else data
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        _read_heif(name)
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise DigitsError(
            f"{name}: {image.width}x{image.height} pixels is too large "
            f"(limit {MAX_PIXELS:,}); crop or shrink it first"
        )
    return image


def _read_heif(name: str) -> None:
    """Let Pillow open HEIF images (pillow-heif's opener, registered once); raises DigitsError
    when the optional pillow-heif is not installed."""
    try:
        import pillow_heif
    except ImportError:
        raise DigitsError(
            f"{name}: a HEIC/HEIF photo, which needs the optional pillow-heif: "
            "pip install pillow-heif (or save the photo as JPEG or PNG)"
        ) from None
    pillow_heif.register_heif_opener()


def save_crops(frames: Frames, folder: Path) -> list[Path]:
    """Each readable frame as the model reads it (28x28 uint8, a light digit on black), as a PNG
    in `folder` named after its input: `photo.jpg.png`, `scan.tif.frame2.png`, `stdin.png` (a
    name already taken in this call gets `-2`, `-3`, ...). Returns the paths written.

    Raises OSError when `folder` cannot be written; files already written stay.
    """
    written: list[Path] = []
    for source, image in frames:
        if isinstance(image, DigitsError):
            continue
        stem = "stdin" if source.path == STDIN else Path(source.path).name
        stem += "" if source.frame is None else f".frame{source.frame}"
        target, number = folder / f"{stem}.png", 1
        while target in written:
            number += 1
            target = folder / f"{stem}-{number}.png"
        buffer = io.BytesIO()
        Image.fromarray(image, "L").save(buffer, "PNG")
        atomic_write_bytes(target, buffer.getvalue())
        written.append(target)
    return written


def frame_grayscale(image: Image.Image) -> np.ndarray:
    """One frame as a viewer shows it: float32 grayscale, shape (height, width), in [0, 255].

    The EXIF orientation tag is applied (ImageOps.exif_transpose). 16-bit pixels are scaled by
    65535; 32-bit integer and float pixels by the smallest of 1, 255 or 65535 that holds their
    largest value, or from their minimum to their maximum if they are negative or larger (NaN
    and infinities count as the median).

    A transparent colour key (GIF, PNG tRNS) marks the paper's own colour, so it is shown in that
    colour. With an alpha channel, the alpha is the ink where the visible colour is even (white
    ink on a transparent background, as drawing apps save it); otherwise the image is composited
    over black if what is visible is light on average, over white if it is dark.

    Raises OSError or ValueError if Pillow cannot decode the frame.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith(("I", "F")):
        return _scaled(np.asarray(image), image.mode)
    key = image.info.get("transparency")
    if "A" not in image.mode and "a" not in image.mode and not isinstance(key, bytes):
        colour = _luminance(image)
        if key is None or np.ptp(colour) > 0:
            return colour
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
    colour = _luminance(rgba)
    if np.ptp(alpha) == 0:
        return colour
    weight = alpha.sum()
    mean = float((alpha * colour).sum() / weight)
    spread = float(np.sqrt((alpha * (colour - mean) ** 2).sum() / weight))
    if spread <= UNIFORM_COLOUR:
        return 255 * alpha
    backdrop = 0.0 if mean > 127.5 else 255.0
    return alpha * colour + (1 - alpha) * backdrop


def _luminance(image: Image.Image) -> np.ndarray:
    """ITU-R 601-2 luma of the colours (any alpha ignored), float32 in [0, 255]."""
    return np.asarray(image.convert("RGB").convert("L"), dtype=np.float32)


def _scaled(values: np.ndarray, mode: str) -> np.ndarray:
    """Integer or float pixels mapped to [0, 255] by bit depth or value range."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values[~finite] = np.median(values[finite]) if finite.any() else 0.0
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16") and low >= 0:
        return (values * (255 / 65_535)).astype(np.float32)
    if low >= 0 and high <= FULL_SCALES[-1]:
        full = next(scale for scale in FULL_SCALES if high <= scale)
        return (values * (255 / full)).astype(np.float32)
    return ((values - low) * (255 / ((high - low) or 1.0))).astype(np.float32)


def to_mnist_format(gray: np.ndarray, source: str = "image") -> np.ndarray:
    """28x28 uint8, light digit on black, cropped, fit to 20x20 and centred by mass.

    `gray` is a 2-D grayscale image in [0, 255] (any float or integer dtype), dark-on-light or
    light-on-dark, of any size. The paper is its commonest grey level and the ink the side
    (darker or lighter) that reaches further from it, so the decision rests on the image as a
    whole, not on its border. In a photo that shows what the paper lies on, the digit is read on
    the sheet alone (see `_sheet_ink`). Raises DigitsError ("no digit found") when nothing
    stands out of the paper by MIN_CONTRAST of full scale and NOISE_MARGIN noise deviations,
    when the ink is a speck smaller than MIN_DIGIT_PIXELS, or when a sheet shows but holds no
    digit; and ("no sheet with a digit found") when the strongest shape is solid, not strokes
    (a note too small to be found as a sheet, read as ink itself).
    """
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise DigitsError(f"{source}: not a 2-D image (shape {gray.shape})")
    if np.ptp(gray) == 0:
        raise DigitsError(f"{source}: no digit found (the image is one flat colour)")
    work = _shrunk(gray, WORK_SIDE)
    found = _sheet_ink(work, source)
    if found is None:
        found = _ink(work, _polarity(work))
    if not _stands_out(found):
        raise DigitsError(
            f"{source}: no digit found (nothing stands out from the background: contrast "
            f"{found.peak:.1f} of 255, noise {found.noise:.1f})"
        )
    core, keep = _digit_mask(found.smooth, found.peak, found.noise)
    height, width = (int(np.ptp(np.flatnonzero(core.any(axis=a)))) + 1 for a in (1, 0))
    if max(height, width) < MIN_DIGIT_PIXELS:
        raise DigitsError(
            f"{source}: no digit found (only a speck of ink, {width}x{height} pixels; a digit "
            f"needs at least {MIN_DIGIT_PIXELS} pixels)"
        )
    if _is_blob(core):
        raise DigitsError(
            f"{source}: no sheet with a digit found (the strongest shape, {width}x{height} "
            "pixels, is solid, not pen strokes); crop the photo to the paper around the digit "
            "or photograph it on a plain background"
        )
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    grain = min(2 * _pixel_noise(work), found.peak / 2)  # paper's noise, kept out of the digit
    return _centred(np.clip(found.ink[crop] - grain, 0, None) * keep[crop])


@dataclass(frozen=True)
class _Ink:
    """How far each pixel stands out of the paper on one side, in grey levels (0 = paper)."""

    ink: np.ndarray  # float32, the shape of the image searched
    smooth: np.ndarray  # the same, Gaussian-smoothed (sigma 1 pixel) against noise
    noise: float  # standard deviation of `smooth` on the paper
    peak: float  # the strongest smoothed ink


def _ink(work: np.ndarray, sign: float) -> _Ink:
    """The ink of `work` if it is dark (`sign` -1) or light (+1) on the paper.

    The paper is a morphological closing (for dark ink; an opening for light ink) of a small,
    smoothed copy with a square ELEMENT_FRACTION of its shorter side, then blurred: strokes
    narrower than that are filled in while uneven lighting (gradients, vignettes, shadows wider
    than the element) stays, the rolling-ball idea of ImageJ's "Subtract Background" (Sternberg,
    "Biomedical image processing", Computer 16(1), 1983). The paper level is the mode of what is
    left, and the noise the spread of the values below it, so neither depends on how much of the
    image is ink.
    """
    small = ndimage.gaussian_filter(_shrunk(work, BACKGROUND_SIDE), 1.0)
    size = max(3, round(ELEMENT_FRACTION * min(small.shape)))
    fill = ndimage.grey_closing if sign < 0 else ndimage.grey_opening
    paper = ndimage.gaussian_filter(fill(small, size=(size, size)), size / 4)
    if paper.shape != work.shape:
        paper = np.asarray(
            Image.fromarray(paper, "F").resize(work.shape[::-1], Image.Resampling.BILINEAR)
        )
    ink = sign * (work - paper)
    smooth = ndimage.gaussian_filter(ink, 1.0)
    level = _mode(smooth)
    ink -= level
    smooth -= level
    below = smooth[smooth <= 0]
    noise = max(1.4826 * float(np.median(-below)) if below.size else 0.0, NOISE_FLOOR)
    return _Ink(ink=ink, smooth=smooth, noise=noise, peak=float(smooth.max()))


def _polarity(work: np.ndarray) -> float:
    """-1.0 for dark ink, +1.0 for light: the side reaching further from the commonest level.

    The commonest level is the paper even where ink covers most of the image (as in a tightly
    cropped digit), since ink spreads over many levels at its anti-aliased edges.
    """
    smooth = ndimage.gaussian_filter(work, 1.0)
    paper = _mode(ndimage.gaussian_filter(_shrunk(work, BACKGROUND_SIDE), 1.0))
    return 1.0 if float(smooth.max()) - paper > paper - float(smooth.min()) else -1.0


def _mode(values: np.ndarray) -> float:
    """The commonest value (peak of a 512-bin histogram smoothed over 2 bins)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return low
    counts, edges = np.histogram(values, bins=512, range=(low, high))
    peak = int(np.argmax(ndimage.gaussian_filter1d(counts.astype(np.float64), 2.0)))
    return float(edges[peak] + edges[peak + 1]) / 2


def _shrunk(gray: np.ndarray, side: int) -> np.ndarray:
    """The image area-averaged so its larger side is at most `side` pixels."""
    scale = side / max(gray.shape)
    if scale >= 1:
        return gray
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return np.asarray(Image.fromarray(gray, "F").resize(size, Image.Resampling.BOX))


def _pixel_noise(gray: np.ndarray) -> float:
    """Standard deviation of pixel noise, from differences between neighbours.

    Flat paper and flat ink both give differences of noise alone (times sqrt 2); the edges of
    strokes, which differ more, are too few to move the median, however much of the image is ink.
    """
    differences = np.concatenate([np.diff(gray, axis=0).ravel(), np.diff(gray, axis=1).ravel()])
    return max(1.4826 * float(np.median(np.abs(differences))) / np.sqrt(2), NOISE_FLOOR)


def _stands_out(found: _Ink) -> bool:
    """Whether the strongest ink is MIN_CONTRAST of full scale and NOISE_MARGIN deviations."""
    return found.peak >= max(NOISE_MARGIN * found.noise, MIN_CONTRAST * 255)


def _sheet_ink(work: np.ndarray, source: str) -> _Ink | None:
    """The ink on the sheet of paper (or board) in a photo that shows what it lies on, or None.

    The sheet is the largest light region (for dark ink; the largest dark region for chalk) of
    the image split at Otsu's threshold ("A threshold selection method from gray-level
    histograms", IEEE SMC 9(1), 1979) on a small smoothed copy, its holes (the digit) filled.
    Of the two polarities, the one whose sheet holds ink standing furthest out of its noise
    wins. Returns None when neither region is a sheet (`_is_sheet`): the image is all paper, or
    a digit that crosses the image's edge cuts the paper into pieces. Raises DigitsError when a
    plain sheet (noise under SHEET_NOISE of full scale) shows but holds no digit.
    """
    small = ndimage.gaussian_filter(_shrunk(work, BACKGROUND_SIDE), 1.0)
    light = small > _otsu(small)
    sheets = [(sign, _largest_filled(side)) for sign, side in ((-1.0, light), (1.0, ~light))]
    sheets = [(sign, sheet) for sign, sheet in sheets if _is_sheet(sheet, light == (sign < 0))]
    readings = [_sheet_reading(work, sheet, sign) for sign, sheet in sheets]
    found = [r for r in readings if r is not None and r.peak >= SHEET_CONTRAST * r.noise]
    found = [reading for reading in found if _stands_out(reading)]
    if not found and any(r is not None and r.noise < SHEET_NOISE * 255 for r in readings):
        raise DigitsError(
            f"{source}: no digit found on the sheet (nothing on it stands out as pen strokes "
            "clear of its edges); photograph the digit closer, or crop the photo to the paper "
            "around it"
        )
    return max(found, key=lambda reading: reading.peak / reading.noise, default=None)


def _is_sheet(region: np.ndarray, same: np.ndarray) -> bool:
    """Whether `region` (a filled mask) is a sheet lying on a surround of another level.

    A sheet fills SHEET_MIN to SHEET_FULL of the frame (more leaves no surround), at least
    SHEET_SOLIDITY of its convex hull (a quadrilateral cut by the frame's edges), is at least
    SHEET_OWN of its own class (the digit on it is its holes, a small part), and at most
    SHEET_ALIKE of the frame's edge outside it is of its own class (`same`): paper beside (or
    inside) a digit that crosses the image is no sheet, since the paper goes on past the digit.
    """
    share = float(region.mean())
    if not SHEET_MIN <= share < SHEET_FULL or _solidity(region) < SHEET_SOLIDITY:
        return False
    if (same & region).sum() < SHEET_OWN * region.sum():  # the paper inside a drawn outline
        return False
    border = np.ones_like(region)
    border[1:-1, 1:-1] = False
    outside = border & ~region
    return float((same & outside).sum()) <= SHEET_ALIKE * float(outside.sum())


def _sheet_reading(work: np.ndarray, region: np.ndarray, sign: float) -> _Ink | None:
    """The ink of `work` on the sheet `region` (a mask of a small copy): none of it stands out
    on a blank sheet; None if the region is no sheet after all.

    The region is scaled to `work` and SHEET_MARGIN of the shorter side is cut off its edge (the
    sheet's blurred edge and shadow); outside it, each pixel takes the value of the nearest
    pixel inside, so the surround neither looks like ink nor moves the paper level. Ink that
    stands out must be pen strokes, not a solid shape (`_is_blob`: the hole of a cropped 0 is
    paper inside a dark region), and stay clear of the cut edge (paper beside a digit that
    crosses it).
    """
    scaled = Image.fromarray(region.astype(np.uint8) * 255).resize(
        work.shape[::-1], Image.Resampling.BILINEAR
    )
    inside = ndimage.distance_transform_edt(np.asarray(scaled) > 127)
    inside = inside > SHEET_MARGIN * min(work.shape)
    if not inside.any():
        return None
    nearest = ndimage.distance_transform_edt(~inside, return_distances=False, return_indices=True)
    found = _ink(work[tuple(nearest)], sign)
    smooth = found.smooth * inside
    found = _Ink(ink=found.ink * inside, smooth=smooth, noise=found.noise, peak=float(smooth.max()))
    if not _stands_out(found):
        return found
    core, keep = _digit_mask(found.smooth, found.peak, found.noise)
    edge = ~ndimage.binary_erosion(inside, iterations=2, border_value=1)
    if (keep & edge).any():  # shading along the sheet's edge, or a digit crossing it
        return _Ink(ink=found.ink, smooth=found.smooth, noise=found.noise, peak=0.0)
    return None if _is_blob(core) else found


def _solidity(region: np.ndarray) -> float:
    """The share of its convex hull (scipy.spatial.ConvexHull) a boolean mask fills."""
    outline = np.argwhere(region & ~ndimage.binary_erosion(region))
    if len(outline) < 3 or np.linalg.matrix_rank(outline - outline[0]) < 2:
        return 1.0
    return float(region.sum() / max(ConvexHull(outline).volume, 1.0))


def _is_blob(core: np.ndarray) -> bool:
    """Whether ink (a boolean mask) is one solid shape rather than pen strokes: with its holes
    filled (a note with a digit on it, read as ink itself) its widest part is more than
    BLOB_WIDTH of its size, and it fills more than BLOB_FILL of its box."""
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    if rows.size == 0:
        return False
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    widest = 2 * float(ndimage.distance_transform_edt(ndimage.binary_fill_holes(core)).max())
    return widest > BLOB_WIDTH * max(height, width) and core.sum() > BLOB_FILL * height * width


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of `values`: the level between two classes of least within-class
    variance (256-bin histogram)."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    total = weight[-1]
    mass = np.cumsum(counts * centres)
    below = mass / np.maximum(weight, 1)
    above = (mass[-1] - mass) / np.maximum(total - weight, 1)
    between = weight * (total - weight) * (below - above) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _largest_filled(region: np.ndarray) -> np.ndarray:
    """The largest 4-connected piece of a boolean mask, its holes filled."""
    labels, count = ndimage.label(region)
    if count == 0:
        return region
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)


def _digit_mask(ink: np.ndarray, peak: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The digit's stroke cores and its whole extent, boolean masks shaped like `ink`.

    The digit is the largest connected piece of strong ink (scipy.ndimage.label, 8-connected) and
    the pieces near it; pieces with less than SPECK_FRACTION of its ink are specks and dropped,
    and so are pieces whose strongest ink is under PIECE_PEAK of the peak (broad shading).
    Strokes are found with two thresholds (hysteresis): cores above INK_FRACTION of the peak,
    grown into their anti-aliased edges above EDGE_FRACTION; both at least 3-4 noise deviations.
    The edges reach no further from the cores than the widest core's half-width, so faint
    shading beside the digit (paper blotches, chalk dust) does not join it.
    """
    eight = np.ones((3, 3), dtype=bool)
    cores, count = ndimage.label(ink > max(INK_FRACTION * peak, 4 * noise), structure=eight)
    masses = ndimage.sum_labels(ink, cores, index=np.arange(1, count + 1))
    strong = ndimage.maximum(ink, cores, index=np.arange(1, count + 1)) >= PIECE_PEAK * peak
    masses = np.where(strong, masses, 0.0)
    boxes = ndimage.find_objects(cores)
    pieces = [i for i in range(count) if masses[i] >= SPECK_FRACTION * masses.max()]
    chosen = {int(np.argmax(masses))}
    region = _box(boxes[int(np.argmax(masses))])
    grown = True
    while grown:  # a piece near the digit makes it larger, which may bring more pieces near
        grown = False
        for piece in pieces:
            box = _box(boxes[piece])
            if piece not in chosen and _near(box, region):
                chosen.add(piece)
                region = (*np.minimum(region[:2], box[:2]), *np.maximum(region[2:], box[2:]))
                grown = True
    core = np.isin(cores, [piece + 1 for piece in chosen])
    reach = max(2.0, float(ndimage.distance_transform_edt(core).max()))
    edge = ink > max(EDGE_FRACTION * peak, 3 * noise)
    edges, _ = ndimage.label(edge & (ndimage.distance_transform_edt(~core) <= reach), eight)
    return core, np.isin(edges, np.unique(edges[core]))


def _box(box: tuple[slice, slice]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a scipy.ndimage.find_objects box."""
    return box[0].start, box[1].start, box[0].stop, box[1].stop


def _near(box: tuple[int, ...], region: tuple[int, ...]) -> bool:
    """Whether `box` overlaps `region` grown by NEAR_FRACTION of the region's larger side."""
    margin = NEAR_FRACTION * max(region[2] - region[0], region[3] - region[1])
    return (
        box[0] <= region[2] + margin
        and box[2] >= region[0] - margin
        and box[1] <= region[3] + margin
        and box[3] >= region[1] - margin
    )


def _centred(digit: np.ndarray) -> np.ndarray:
    """The cropped ink scaled to fit DIGIT_BOX, in a FRAME x FRAME frame centred by its mass."""
    scale = DIGIT_BOX / max(digit.shape)
    size = (max(1, round(digit.shape[1] * scale)), max(1, round(digit.shape[0] * scale)))
    patch = np.asarray(
        Image.fromarray(digit.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS),
        dtype=np.float64,
    )
    patch = np.clip(patch, 0, None)
    strokes = patch[patch > STROKE_FRACTION * patch.max()]
    patch = np.clip(patch * (255 / np.percentile(strokes, SATURATED_PERCENTILE)), 0, 255)
    centre_row, centre_col = ndimage.center_of_mass(patch)
    top = min(max(round(MNIST_CENTRE - centre_row), 0), FRAME - patch.shape[0])
    left = min(max(round(MNIST_CENTRE - centre_col), 0), FRAME - patch.shape[1])
    frame = np.zeros((FRAME, FRAME), dtype=np.float64)
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def predict_images(model: object, images: np.ndarray, sources: list[Source]) -> list[Prediction]:
    """Digit, probability and top 3 for each image: `images` is N x 28 x 28 uint8 (MNIST format).

    `model` outputs probabilities N x 10 (a published model, or one saved with a softmax Dense
    output); raises DigitsError for a network that outputs logits (`require_probabilities`).
    """
    from digits.model import require_probabilities

    require_probabilities(model)
    probabilities = model.predict(images, verbose=0)
    predictions = []
    for source, row in zip(sources, probabilities, strict=True):
        order = np.argsort(-row)[:3]
        predictions.append(
            Prediction(
                source=source,
                digit=int(order[0]),
                probability=float(row[order[0]]),
                top3=[(int(d), float(row[d])) for d in order],
            )
        )
    return predictions
