"""Stage prepare: verified MNIST -> data/prepared/{train,val,test}.npz."""

from digits.cli import run_stage
from digits.data import PREPARED_DIR, class_counts, save_split, split_mnist, split_path
from digits.mnist import load_mnist
from digits.params import load_params


def main() -> None:
    params = load_params().prepare
    mnist = load_mnist(mirror=params.mirror)
    for name, split in split_mnist(mnist, params).items():
        save_split(split, split_path(name, PREPARED_DIR))
        print(f"prepare: {name}: {len(split):,} images, per digit {class_counts(split.labels)}")


if __name__ == "__main__":
    run_stage(main)
