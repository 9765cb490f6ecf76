"""Benchmark: the spread of accuracy over training seeds, for the default recipe or a variant.

Trains the default recipe (params.yaml `train`) on the tuned hyperparameters once per seed
(`train.seed` replaced; the search is not rerun), fits the temperature on validation as the train
stage does, and scores each model on validation and test. The committed default run is one of
these draws; this file says how far another seed, or another machine, may land from it.

Recipe choices are made on the validation figures only: `best_val_accuracy`, `val_nll` (after
temperature scaling) and `val_error_auroc`, how well the calibrated confidence ranks the
validation errors below the correct answers (ROC AUC, 1.0 = every error less confident than
every correct answer; label smoothing is known to hurt it: Müller, Kornblith and Hinton (2019),
"When does label smoothing help?", NeurIPS). Needs the pipeline's outputs: run `dvc repro` first.

    python benchmarks/seed_spread.py --seeds 42 1 2 3 4 --out benchmarks/results/seed_spread.json
    python benchmarks/seed_spread.py --label-smoothing 0 \
        --out benchmarks/results/seed_spread_label_smoothing_0.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from scipy.special import softmax
from sklearn.metrics import roc_auc_score
from summary import spread

from digits import runtime
from digits.calibration import fit_temperature, logits, scaled_nll
from digits.data import load_split
from digits.hyperparameters import Hyperparameters
from digits.params import TrainParams, load_params
from digits.training import best_model, compile_for_training, train_model

DATA = Path("data/prepared")
HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def train_and_score(recipe: TrainParams, threads: int) -> dict[str, Any]:
    """Train `recipe` in a scratch folder; the best epoch's validation and test figures."""
    runtime.configure(recipe.seed, threads)
    train, val = load_split(DATA / "train.npz"), load_split(DATA / "val.npz")
    test = load_split(DATA / "test.npz")
    model = compile_for_training(Hyperparameters.load(HYPERPARAMETERS), recipe, train)
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as work:
        result = train_model(model, recipe, train, val, Path(work), report=print)
        best = best_model(Path(work))
        val_logits, test_logits = logits(best, val.images), logits(best, test.images)
    temperature = fit_temperature(val_logits, val.labels)
    val_probabilities = softmax(val_logits / temperature, axis=1)
    val_correct = val_probabilities.argmax(axis=1) == val.labels
    error_auroc = roc_auc_score(val_correct, val_probabilities.max(axis=1))
    return {
        "seed": recipe.seed,
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "temperature": round(temperature, 6),
        "val_nll": round(scaled_nll(val_logits, val.labels, temperature), 6),
        "val_error_auroc": round(float(error_auroc), 6),
        "test_accuracy": float((test_logits.argmax(axis=1) == test.labels).mean()),
        "test_nll": round(scaled_nll(test_logits, test.labels, temperature), 6),
        "training_seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--label-smoothing", type=float, help="replaces train.label_smoothing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seed_spread.json"))
    args = parser.parse_args()

    params = load_params()
    recipe = params.train
    if args.label_smoothing is not None:
        recipe = dataclasses.replace(recipe, label_smoothing=args.label_smoothing)
    runs = []
    for seed in args.seeds:
        runs.append(train_and_score(dataclasses.replace(recipe, seed=seed), params.runtime.threads))
        print(json.dumps(runs[-1]), flush=True)
    figures = ("test_accuracy", "best_val_accuracy", "val_nll", "val_error_auroc", "test_nll")
    summary = {
        "seeds": [run["seed"] for run in runs],
        **{figure: spread([run[figure] for run in runs]) for figure in figures},
        "recipe": {**dataclasses.asdict(recipe), "seed": "varies"},
        "hyperparameters": json.loads(HYPERPARAMETERS.read_text()),
        "environment": runtime.environment(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
