"""Writes that never leave a half-written file: write beside the target, verify, then rename."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digits.errors import DigitsError


@contextlib.contextmanager
def atomic_path(target: Path | str, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success verify it and rename it into place.

    Works for files and directories alike. `verify(temporary)` rejects the result by raising. On
    any error (in the body or in `verify`) the exception propagates, the temporary is removed
    and `target` keeps its previous content (or stays absent).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    temporary = staging / target.name
    try:
        yield temporary
        if verify is not None:
            verify(temporary)
        if target.is_dir() and not target.is_symlink():
            os.replace(target, staging / "previous")  # removed with the staging folder
        os.replace(temporary, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_npz(path: Path | str, keys: tuple[str, ...], fix: str) -> list[np.ndarray]:
    """The arrays named by `keys`, in that order, with the shapes and dtypes stored.

    Raises DigitsError ("not found" or "unreadable or incomplete", then `fix`) when the file is
    missing, damaged or lacks a key.
    """
    path = Path(path)
    if not path.is_file():
        raise DigitsError(f"{path} not found: {fix}")
    try:
        with np.load(path) as archive:
            return [archive[key] for key in keys]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DigitsError(f"{path} is unreadable or incomplete ({error}): {fix}") from None


def content_key(definition: Any, arrays: Sequence[np.ndarray] = ()) -> str:
    """A 16-hex-digit SHA-256 of a JSON-serialisable `definition` and the bytes of `arrays`.

    Names saved work (a search, a training run) by what defines it, so that work is resumed
    exactly when the same thing would be computed again, and never under other inputs.
    """
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(target: Path | str, text: str) -> None:
    atomic_write_bytes(target, text.encode())


def write_json(target: Path | str, payload: Any) -> None:
    atomic_write_text(target, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_csv(target: Path | str, rows: list[dict[str, Any]]) -> None:
    """Rows of equal keys as CSV; the header comes from the first row, and no rows make an
    empty file."""
    if not rows:
        atomic_write_text(target, "")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(target, buffer.getvalue())
