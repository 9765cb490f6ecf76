"""Shared fixtures: real MNIST, as a committed subset (tests/data/mnist_subset.npz, what the
fast tier runs on, offline) or whole (from MNIST_MIRROR, the user cache or a download)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from digits import runtime
from digits.data import Split
from digits.files import read_npz
from digits.mnist import Mnist, load_mnist

# Thread counts can only be set before TensorFlow starts; tests use the default params' value.
runtime.configure(seed=0, threads=2)

SUBSET = Path(__file__).parent / "data" / "mnist_subset.npz"
WHOLE_MNIST = "whole_mnist"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{WHOLE_MNIST}: uses the `mnist` fixture (all of MNIST: MNIST_MIRROR, the user cache or "
        "a download); set on such tests automatically, left out of `make test-fast`",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the whole dataset, directly or through a fixture, before `-m`
    selects: the fast tier then never loads (or downloads) MNIST."""
    for item in items:
        if "mnist" in getattr(item, "fixturenames", ()):
            item.add_marker(WHOLE_MNIST)


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """All of MNIST: 60,000 training and 10,000 test images (see digits.mnist.Mnist)."""
    return load_mnist(report=lambda line: None)


@pytest.fixture(scope="session")
def mnist_subset() -> Mnist:
    """The committed subset of real MNIST as a `Mnist`: 4,000 training images (stratified) and
    MNIST's first 1,000 test images, in MNIST's order (tests/data/make_subset.py writes it)."""
    arrays = read_npz(
        SUBSET,
        ("train_images", "train_labels", "test_images", "test_labels"),
        "rebuild it with `python tests/data/make_subset.py` (reads MNIST via MNIST_MIRROR)",
    )
    return Mnist(*arrays)


@pytest.fixture(scope="session")
def tiny_splits(mnist_subset: Mnist) -> dict[str, Split]:
    """300 training, 100 validation and 200 test images of real MNIST (the committed subset),
    stratified."""
    train = Split(mnist_subset.train_images, mnist_subset.train_labels)
    test = Split(mnist_subset.test_images, mnist_subset.test_labels)
    pool = train.subset(400, seed=0)
    return {
        "train": Split(pool.images[:300], pool.labels[:300]),
        "val": Split(pool.images[300:], pool.labels[300:]),
        "test": test.subset(200, seed=0),
    }
