"""The prepared splits: train, validation (carved from MNIST's 60,000) and the untouched test set.

Each split is a compressed `.npz` holding `images` (N x 28 x 28 uint8) and `labels` (N uint8).
Pixels stay uint8 on disk and in memory; the model scales them (see `digits.model`). NumPy only:
stages that read `.npz` files do not load TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

from digits.errors import DigitsError
from digits.files import atomic_path, read_npz
from digits.params import PrepareParams

if TYPE_CHECKING:  # only prepare reads raw MNIST; keeps download code out of the training deps
    from digits.mnist import Mnist

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10  # labels are the digits 0-9


@dataclass(frozen=True)
class Split:
    """images N x 28 x 28 uint8 (0 = background, 255 = ink), labels N uint8 digits 0-9."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, size: int | None, seed: int) -> Split:
        """A stratified subset of `size` samples in stored order (all of them when `size` is None
        or too large)."""
        if size is None or size >= len(self):
            return self
        try:
            keep, _ = train_test_split(
                np.arange(len(self)), train_size=size, stratify=self.labels, random_state=seed
            )
        except ValueError as error:  # sklearn: too few left over to stratify
            raise DigitsError(
                f"cannot keep a stratified {size} of {len(self)} images ({error}); choose a size "
                "at least 10 below the total (or null for all of them) in params.yaml"
            ) from None
        keep = np.sort(keep)
        return Split(self.images[keep], self.labels[keep])


def split_mnist(mnist: Mnist, params: PrepareParams) -> dict[str, Split]:
    """`train`, `val` and `test` splits, each in MNIST's order: a stratified train/validation
    split of the (subsampled) training images, `validation_size` images for validation, and
    the test set as published (or its stratified subsample)."""
    pool = Split(mnist.train_images, mnist.train_labels).subset(params.train_subsample, params.seed)
    train_index, val_index = train_test_split(
        np.arange(len(pool)),
        test_size=params.validation_size,
        stratify=pool.labels,
        random_state=params.seed,
    )
    test = Split(mnist.test_images, mnist.test_labels).subset(params.test_subsample, params.seed)
    return {
        "train": Split(pool.images[np.sort(train_index)], pool.labels[np.sort(train_index)]),
        "val": Split(pool.images[np.sort(val_index)], pool.labels[np.sort(val_index)]),
        "test": test,
    }


def save_split(split: Split, path: Path) -> None:
    with atomic_path(path, verify=load_split) as temporary:
        np.savez_compressed(temporary, images=split.images, labels=split.labels)


def load_split(path: Path | str) -> Split:
    """Read one split: images N x 28 x 28 uint8, labels N digits 0-9 (uint8 as prepare writes).

    Raises DigitsError, saying to run `dvc repro prepare`, when the file is missing or
    unreadable, or its images or labels have the wrong shape, dtype or values.
    """
    fix = "run `dvc repro prepare` to regenerate it"
    images, labels = read_npz(path, ("images", "labels"), fix)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DigitsError(
            f"{path}: images must be N x 28 x 28 uint8, got {images.shape} {images.dtype}: {fix}"
        )
    if labels.shape != (len(images),) or (labels.size and labels.max() >= NUM_CLASSES):
        raise DigitsError(
            f"{path}: labels must be {len(images)} digits 0-9, got {labels.shape}: {fix}"
        )
    return Split(images, labels)


def class_counts(labels: np.ndarray) -> list[int]:
    return np.bincount(labels, minlength=NUM_CLASSES).tolist()
