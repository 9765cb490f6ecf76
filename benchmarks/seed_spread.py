"""Benchmark: the spread of test accuracy over training seeds, for the default recipe.

Trains the default recipe (params.yaml `train`) on the tuned hyperparameters once per seed
(`train.seed` replaced; the search is not rerun) and scores each on the test set. The committed
default run is one of these draws; this file says how far another seed, or another machine,
may land from it. Needs the pipeline's outputs: run `dvc repro` first.

    python benchmarks/seed_spread.py --seeds 42 1 2 3 4 --out benchmarks/results/seed_spread.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from digits import runtime
from digits.data import load_split
from digits.hyperparameters import Hyperparameters
from digits.params import load_params
from digits.training import best_model, compile_for_training, train_model

DATA = Path("data/prepared")
HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def test_accuracy(seed: int) -> dict[str, float]:
    """Train with `seed` in a scratch folder; the best epoch's validation and test accuracy."""
    params = load_params()
    recipe = dataclasses.replace(params.train, seed=seed)
    runtime.configure(seed, params.runtime.threads)
    train, val = load_split(DATA / "train.npz"), load_split(DATA / "val.npz")
    test = load_split(DATA / "test.npz")
    model = compile_for_training(Hyperparameters.load(HYPERPARAMETERS), recipe, train)
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as work:
        result = train_model(model, recipe, train, val, Path(work), report=print)
        predicted = best_model(Path(work)).predict(test.images, verbose=0).argmax(axis=1)
    return {
        "seed": seed,
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "test_accuracy": float((predicted == test.labels).mean()),
        "training_seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seed_spread.json"))
    args = parser.parse_args()

    runs = [test_accuracy(seed) for seed in args.seeds]
    accuracy = [run["test_accuracy"] for run in runs]
    summary = {
        "seeds": len(runs),
        "test_accuracy_mean": round(statistics.mean(accuracy), 6),
        "test_accuracy_sd": round(statistics.stdev(accuracy), 6) if len(runs) > 1 else None,
        "test_accuracy_min": min(accuracy),
        "test_accuracy_max": max(accuracy),
        "hyperparameters": json.loads(HYPERPARAMETERS.read_text()),
        "environment": runtime.environment(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
