"""Benchmark: does test-time augmentation (TTA) help trained models? Decided on validation only.

Each model predicts the validation split as it is and shifted by one pixel (zero fill), and the
softmax probabilities of the copies are averaged: the usual test-time counterpart of training on
small distortions (Simard, Steinkraus and Platt (2003), "Best Practices for Convolutional Neural
Networks Applied to Visual Document Analysis", ICDAR, train on them):

- `cross5`: the image and its four one-pixel shifts (up, down, left, right): 5 forward passes;
- `grid9`: the image and its eight one-pixel shifts (the 3x3 neighbourhood): 9 forward passes.

For each model: validation accuracy, ECE, NLL and Brier score without and with each TTA, and
McNemar's exact test of each TTA against the plain prediction on the same images (the review
command's `compare_predictions`). The test split is never read: this benchmark exists to decide
whether TTA becomes part of the recipe.

The models are the experiments of a `benchmarks/seed_sweep.py` result (one per training seed,
read from DVC's cache, temperature scaling included):

    python benchmarks/test_time_augmentation.py \
        --sweep benchmarks/results/seed_sweep_default.json \
        --out benchmarks/results/test_time_augmentation.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digits import runtime
from digits.data import Split, load_split
from digits.errors import run_main
from digits.evaluation import Predictions, probability_scores
from digits.experiments import experiment_models, sweep_result
from digits.files import write_json
from digits.params import RuntimeParams, load_section
from digits.review import RevisionPredictions, compare_predictions

SHIFTS = {
    "cross5": [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)],
    "grid9": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
}


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`images` (n, 28, 28) uint8 moved `dy` pixels down and `dx` right, zeros shifted in."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    height, width = images.shape[1:]
    return padded[:, 1 - dy : 1 - dy + height, 1 - dx : 1 - dx + width]


def scores(predictions: Predictions) -> dict[str, float]:
    """Accuracy, ECE, NLL (nats) and Brier score, as evaluate computes them."""
    return {"accuracy": float(1 - predictions.wrong.mean()), **probability_scores(predictions)}


def model_entry(name: str, model: keras.Model, val: Split) -> dict[str, Any]:
    """One model's validation scores plain and with each TTA, and McNemar's test of each TTA
    against the plain predictions."""
    passes = {
        shift: model.predict(shifted(val.images, *shift), batch_size=1000, verbose=0)
        for shift in SHIFTS["grid9"]
    }
    plain = Predictions(passes[0, 0], val.labels)
    entry = {"model": name, "parameters": model.count_params(), "plain": scores(plain)}
    for tta, shifts in SHIFTS.items():
        averaged = Predictions(np.mean([passes[shift] for shift in shifts], axis=0), val.labels)
        paired = compare_predictions(
            "plain", RevisionPredictions(val.labels, plain.predicted),
            tta, RevisionPredictions(val.labels, averaged.predicted),
        )  # fmt: skip
        entry[tta] = {
            **scores(averaged),
            **{k: v for k, v in dataclasses.asdict(paired).items() if k not in ("old", "new")},
        }
    return entry


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per TTA: its forward passes and accuracy gains over the models, models improved and
    worse, and the images fixed and broken in all."""
    found = {}
    for name in SHIFTS:
        gains = [entry[name]["accuracy"] - entry["plain"]["accuracy"] for entry in results]
        found[name] = {
            "forward_passes": len(SHIFTS[name]),
            "val_accuracy_gain_mean": round(statistics.mean(gains), 6),
            "val_accuracy_gain_min": round(min(gains), 6),
            "val_accuracy_gain_max": round(max(gains), 6),
            "models_improved": sum(gain > 0 for gain in gains),
            "models_worse": sum(gain < 0 for gain in gains),
            "fixed_total": sum(entry[name]["fixed"] for entry in results),
            "introduced_total": sum(entry[name]["introduced"] for entry in results),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, required=True, help="a seed_sweep.py result")
    parser.add_argument("--val", type=Path, default=Path("data/prepared/val.npz"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sweep = sweep_result(args.sweep)
    runtime.configure(seed=0, threads=load_section(RuntimeParams).threads)
    val = load_split(args.val)
    results = []
    for run, model in experiment_models(sweep["runs"]):
        results.append(model_entry(run["name"], model, val))
        print(f"test_time_augmentation: {run['name']}: " + ", ".join(
            f"{name} {results[-1][name]['accuracy']:.4f}" for name in ("plain", *SHIFTS)
        ), flush=True)  # fmt: skip
    result = {
        "split": "validation",
        "images": len(val.labels),
        "models_from": str(args.sweep),
        "summary": summary(results),
        "models": results,
        "environment": runtime.environment(),
    }
    write_json(args.out, result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    run_main(main)
