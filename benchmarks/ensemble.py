"""Benchmark: how far would averaging independently trained models go, as an opt-in ensemble?

The models are the experiments of a `benchmarks/seed_sweep.py` result: one recipe, one model
per training seed, read from DVC's cache (each run of the result file names the architecture it
trained). Averaging their probabilities
is a deep ensemble (Lakshminarayanan, Pritzel and Blundell (2017), "Simple and Scalable
Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS). An ensemble of k costs k
trainings and k forward passes: an opt-in idea, not a default, whose time the default pipeline
does not spend.

For every subset of 1 to n models (size 1: the single models, the baseline), the averaged
probabilities' accuracy on the validation and test splits; per size the spread over subsets and
the subset with the best validation accuracy (with how many subsets tie with it: one image is
0.02 points of validation accuracy) with its test accuracy, so a choice is made on validation
and the test set only reports it.

    python benchmarks/seed_sweep.py run --name default --seeds 42 1 2 3 4 \
        --out benchmarks/results/seed_sweep_default.json
    python benchmarks/ensemble.py --sweep benchmarks/results/seed_sweep_default.json \
        --out benchmarks/results/ensemble_seeds.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from digits import runtime
from digits.data import Split, load_split
from digits.errors import run_main
from digits.experiments import experiment_models, sweep_result
from digits.files import write_json
from digits.params import RuntimeParams, load_section
from digits.spread import spread

SPLITS = ("val", "test")


def predict_all(runs: list[dict[str, Any]], splits: dict[str, Split]) -> dict[str, np.ndarray]:
    """Each split's probabilities from each run's model: (models, images, 10) float32."""
    probabilities: dict[str, list[np.ndarray]] = {name: [] for name in splits}
    for run, model in experiment_models(runs):
        for name, split in splits.items():
            probabilities[name].append(model.predict(split.images, batch_size=1000, verbose=0))
        print(f"ensemble: predicted with {run['name']}", flush=True)
    return {name: np.stack(stacked) for name, stacked in probabilities.items()}


def subset_accuracy(probabilities: np.ndarray, labels: np.ndarray, members: tuple) -> float:
    """Accuracy of the members' (indices into `probabilities`' first axis) mean probabilities."""
    averaged = probabilities[list(members)].mean(axis=0)
    return float((averaged.argmax(axis=1) == labels).mean())


def by_size(probabilities: dict[str, np.ndarray], splits: dict[str, Split]) -> list[dict]:
    """Per ensemble size: the spread of validation and test accuracy over every subset, and the
    subset best on validation with its test accuracy. `probabilities` maps each split to its
    (models, images, 10) float32 array (`predict_all`)."""
    models = len(probabilities["val"])
    sizes = []
    for size in range(1, models + 1):
        subsets = list(itertools.combinations(range(models), size))
        accuracy = {
            name: [subset_accuracy(probabilities[name], splits[name].labels, s) for s in subsets]
            for name in SPLITS
        }
        val, test = accuracy["val"], accuracy["test"]
        chosen = int(np.argmax(val))
        sizes.append({
            "size": size,
            "subsets": len(subsets),
            "val_accuracy": spread(val),
            "test_accuracy": spread(test),
            "best_on_val": {"members": list(subsets[chosen]), "tied": val.count(val[chosen]),
                            "val_accuracy": val[chosen], "test_accuracy": test[chosen]},
        })  # fmt: skip
        print(f"ensemble: subsets of {size}: best-on-val subset val {val[chosen]:.4f}, "
              f"test {test[chosen]:.4f}", flush=True)  # fmt: skip
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, required=True, help="a seed_sweep.py result")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sweep = sweep_result(args.sweep)
    runtime.configure(seed=0, threads=load_section(RuntimeParams).threads)
    splits = {name: load_split(Path("data/prepared") / f"{name}.npz") for name in SPLITS}
    probabilities = predict_all(sweep["runs"], splits)
    singles = [
        {"name": run["name"], **{
            f"{name}_accuracy": subset_accuracy(probabilities[name], splits[name].labels, (k,))
            for name in SPLITS}}
        for k, run in enumerate(sweep["runs"])
    ]  # fmt: skip
    result = {
        "models_from": str(args.sweep),
        "images": {name: len(split.labels) for name, split in splits.items()},
        "models": singles,
        "by_size": by_size(probabilities, splits),
        "environment": runtime.environment(),
    }
    write_json(args.out, result)
    print(json.dumps(result["by_size"][-1], indent=1))


if __name__ == "__main__":
    run_main(main)
