"""Stage prepare: verified MNIST -> the train, validation and test splits (.npz)."""

import argparse
from pathlib import Path

from digits.data import class_counts, save_split, split_mnist
from digits.errors import run_main
from digits.mnist import load_mnist
from digits.params import PrepareParams, confirm_unchanged, load_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for {train,val,test}.npz")
    args = parser.parse_args()

    params = load_section(PrepareParams)
    mnist = load_mnist(mirror=params.mirror)
    splits = split_mnist(mnist, params)
    confirm_unchanged(params, stage="prepare")
    for name, split in splits.items():
        save_split(split, args.out / f"{name}.npz")
        print(f"prepare: {name}: {len(split):,} images, per digit {class_counts(split.labels)}")


if __name__ == "__main__":
    run_main(main)
