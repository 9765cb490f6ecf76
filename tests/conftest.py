"""Shared fixtures: real MNIST (from MNIST_MIRROR or the user cache), subsampled for speed."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from digits import runtime
from digits.data import Split
from digits.mnist import Mnist, load_mnist

# Thread counts can only be set before TensorFlow starts; tests use the default params' value.
runtime.configure(seed=0, threads=2)


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    return load_mnist(report=lambda line: None)


@pytest.fixture(scope="session")
def tiny_splits(mnist: Mnist) -> dict[str, Split]:
    """300 training, 100 validation and 200 test images of real MNIST, stratified."""
    train = Split(mnist.train_images, mnist.train_labels)
    test = Split(mnist.test_images, mnist.test_labels)
    pool = train.subset(400, seed=0)
    return {
        "train": Split(pool.images[:300], pool.labels[:300]),
        "val": Split(pool.images[300:], pool.labels[300:]),
        "test": test.subset(200, seed=0),
    }
