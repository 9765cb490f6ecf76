"""Write tests/data/mnist_subset.npz: the real MNIST images the fast tests run on, offline.

Read and byte-verified by `digits.mnist.load_mnist` (from MNIST_MIRROR, the user cache or a
download): 4,000 training images, a stratified sample (MNIST's class proportions,
`Split.subset` with seed 0) in MNIST's order, and MNIST's first 1,000 test images (85 to 126 of
each digit), so a test that names a test image by its index sees the same image in the subset
as in the whole set. Keys: train_images and test_images (N x 28 x 28 uint8, light digit on
black), train_labels and test_labels (N uint8). About 0.8 MB. Rerunning it writes the same
arrays.

    python tests/data/make_subset.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digits.data import Split
from digits.files import atomic_path
from digits.mnist import load_mnist

SUBSET = Path(__file__).with_name("mnist_subset.npz")
TRAIN_IMAGES = 4_000
TEST_IMAGES = 1_000
SEED = 0


def main() -> None:
    mnist = load_mnist(report=print)
    train = Split(mnist.train_images, mnist.train_labels).subset(TRAIN_IMAGES, seed=SEED)
    test = Split(mnist.test_images[:TEST_IMAGES], mnist.test_labels[:TEST_IMAGES])
    with atomic_path(SUBSET) as temporary:
        np.savez_compressed(
            temporary,
            train_images=train.images,
            train_labels=train.labels,
            test_images=test.images,
            test_labels=test.labels,
        )
    print(f"wrote {SUBSET} ({SUBSET.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
