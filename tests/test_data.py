"""Prepared splits: stratified, reproducible, and loudly refused when damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits.data import Split, load_split, save_split, split_mnist
from digits.errors import DigitsError
from digits.mnist import Mnist
from digits.params import PrepareParams


def params(**overrides: object) -> PrepareParams:
    values = {"mirror": None, "validation_size": 100, "train_subsample": 1000,
              "test_subsample": 200, "seed": 1}  # fmt: skip
    return PrepareParams(**{**values, **overrides})


def test_splits_are_stratified_disjoint_and_reproducible(mnist: Mnist) -> None:
    splits = split_mnist(mnist, params())
    assert [len(splits[name]) for name in ("train", "val", "test")] == [900, 100, 200]
    assert np.bincount(splits["val"].labels, minlength=10).min() >= 8
    again = split_mnist(mnist, params())
    np.testing.assert_array_equal(splits["val"].images, again["val"].images)
    train_rows = {image.tobytes() for image in splits["train"].images}
    assert not any(image.tobytes() in train_rows for image in splits["val"].images)


def test_the_full_test_set_is_untouched(mnist: Mnist) -> None:
    splits = split_mnist(mnist, params(test_subsample=None))
    np.testing.assert_array_equal(splits["test"].images, mnist.test_images)


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


def test_batches_cover_the_split_every_epoch_in_a_fresh_seeded_order() -> None:
    split = Split(np.arange(50, dtype=np.uint8).repeat(784).reshape(50, 28, 28), np.arange(50) % 10)

    def epochs(seed: int) -> list[list[int]]:
        dataset = split.batches(8, shuffle_seed=seed, one_hot=True)
        orders = []
        for _ in range(2):
            batches = list(dataset.as_numpy_iterator())
            images = np.concatenate([images for images, _ in batches])
            labels = np.concatenate([labels for _, labels in batches])
            np.testing.assert_array_equal(labels.argmax(axis=1), images[:, 0, 0] % 10)
            orders.append(images[:, 0, 0].tolist())
        return orders

    first, second = epochs(seed=3)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second
    assert epochs(seed=3) == [first, second]
    unshuffled = split.batches(8).as_numpy_iterator()
    assert np.concatenate([labels for _, labels in unshuffled]).tolist() == split.labels.tolist()
