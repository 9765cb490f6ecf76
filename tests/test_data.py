"""Prepared splits: stratified, reproducible, and loudly refused when damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits.batches import ordered_batches, shuffled_batches, steps_per_epoch
from digits.data import Split, load_split, save_split, split_mnist
from digits.errors import DigitsError
from digits.mnist import Mnist
from digits.params import PrepareParams


def params(**overrides: object) -> PrepareParams:
    values = {"mirror": None, "validation_size": 100, "train_subsample": 1000,
              "test_subsample": 200, "seed": 1}  # fmt: skip
    return PrepareParams(**{**values, **overrides})


def test_splits_are_stratified_disjoint_and_reproducible(mnist_subset: Mnist) -> None:
    splits = split_mnist(mnist_subset, params())
    assert [len(splits[name]) for name in ("train", "val", "test")] == [900, 100, 200]
    assert np.bincount(splits["val"].labels, minlength=10).min() >= 8
    again = split_mnist(mnist_subset, params())
    np.testing.assert_array_equal(splits["val"].images, again["val"].images)
    train_rows = {image.tobytes() for image in splits["train"].images}
    assert not any(image.tobytes() in train_rows for image in splits["val"].images)


def test_the_full_test_set_is_untouched(mnist_subset: Mnist) -> None:
    splits = split_mnist(mnist_subset, params(test_subsample=None))
    np.testing.assert_array_equal(splits["test"].images, mnist_subset.test_images)


def test_a_split_round_trips_through_npz(tmp_path: Path) -> None:
    split = Split(np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3], np.uint8))
    save_split(split, tmp_path / "s.npz")
    loaded = load_split(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.labels, split.labels)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_missing_and_corrupt_splits_say_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(DigitsError, match=r"not found: run `dvc repro prepare`"):
        load_split(tmp_path / "absent.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DigitsError, match=r"unreadable or incomplete .*run `dvc repro prepare`"):
        load_split(tmp_path / "bad.npz")


def test_batches_cover_the_split_every_epoch_in_an_order_drawn_from_seed_and_epoch() -> None:
    split = Split(np.arange(50, dtype=np.uint8).repeat(784).reshape(50, 28, 28), np.arange(50) % 10)

    def epochs(seed: int, which: range) -> list[list[int]]:
        """Each epoch's image order, from one pipeline over the epochs in `which`."""
        batches = list(shuffled_batches(split, 8, seed, which, one_hot=True).as_numpy_iterator())
        assert len(batches) == steps_per_epoch(split, 8) * len(which)
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        np.testing.assert_array_equal(labels.argmax(axis=1), images[:, 0, 0] % 10)
        return np.split(images[:, 0, 0], len(which))

    first, second, third = (order.tolist() for order in epochs(3, range(3)))
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second != third
    assert [order.tolist() for order in epochs(3, range(1, 3))] == [second, third], (
        "a run resumed at epoch 1 sees the batches an uninterrupted run sees there"
    )
    assert epochs(4, range(1))[0].tolist() != first
    ordered = ordered_batches(split, 8).as_numpy_iterator()
    assert np.concatenate([labels for _, labels in ordered]).tolist() == split.labels.tolist()
