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

A variant changes the recipe with `--set train.KEY=VALUE` (validated as params.yaml is) and the
tuned architecture with `--hyperparameter NAME=VALUE`. `--validation-only` never loads the test
split, for runs that decide a recipe. Every run is kept in `--work` (ignored by Git) under a key
of what defines it, so a killed benchmark resumes and a repeated run is only scored again; each
run's folder is in the result file, for `benchmarks/ensemble.py --seed-spread`.

    python benchmarks/seed_spread.py --seeds 42 1 2 3 4 --out benchmarks/results/seed_spread.json
    python benchmarks/seed_spread.py --set train.label_smoothing=0 --seeds 42 1 \
        --out benchmarks/results/seed_spread_label_smoothing_0.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from digits import runtime
from digits.calibration import fit_temperature, logits, scaled_nll
from digits.data import load_split
from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from digits.params import PARAMS_FILE, TrainParams, parse_params
from digits.spread import spread
from digits.training import best_model, compile_for_training, run_key, train_model

HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def train_and_score(
    hp: Hyperparameters, recipe: TrainParams, *, threads: int, data: Path, work: Path, test: bool
) -> dict[str, Any]:
    """Train `recipe` on `hp` (or resume its kept run); the best epoch's validation figures,
    and its test figures when `test`. `training_seconds` is the training's own time, whenever
    it ran."""
    runtime.configure(recipe.seed, threads)
    train, val = load_split(data / "train.npz"), load_split(data / "val.npz")
    model = compile_for_training(hp, recipe, train)
    run = work / run_key(model, recipe, train, val, threads)
    result = train_model(model, recipe, train, val, run, report=print)
    best = best_model(run)
    val_logits = logits(best, val.images)
    temperature = fit_temperature(val_logits, val.labels)
    val_probabilities = softmax(val_logits / temperature, axis=1)
    val_correct = val_probabilities.argmax(axis=1) == val.labels
    error_auroc = roc_auc_score(val_correct, val_probabilities.max(axis=1))
    figures = {
        "seed": recipe.seed,
        "run": str(run),
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "temperature": round(temperature, 6),
        "val_nll": round(scaled_nll(val_logits, val.labels, temperature), 6),
        "val_error_auroc": round(float(error_auroc), 6),
        "training_seconds": result.seconds,
    }
    if test:
        test_split = load_split(data / "test.npz")
        test_logits = logits(best, test_split.images)
        figures["test_accuracy"] = float((test_logits.argmax(axis=1) == test_split.labels).mean())
        figures["test_nll"] = round(scaled_nll(test_logits, test_split.labels, temperature), 6)
    return figures


def assignments(pairs: list[str], option: str) -> dict[str, Any]:
    """`["a.b=1", ...]` as `{"a.b": 1}`, each value read as YAML (`0.1`, `true`, `null`)."""
    parsed = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise SystemExit(f"{option}: expected KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = YAML(typ="safe", pure=True).load(value)
        except YAMLError as error:
            raise SystemExit(f"{option} {key}: {value!r} is not a YAML value ({error})") from None
    return parsed


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's mapping with each dotted `train.` key replaced (the key must exist; a
    block such as `train.augmentation` is changed one key at a time)."""
    for key, value in overrides.items():
        if not key.startswith("train."):
            raise SystemExit(f"--set {key}: only train.* keys change a training recipe")
        if key == "train.seed":
            raise SystemExit("--set train.seed: the training seeds are --seeds")
        if key.startswith("train.hyperparameters"):
            raise SystemExit(f"--set {key}: the architecture is --hyperparameter NAME=VALUE")
        *parents, leaf = key.split(".")
        node = raw
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise SystemExit(f"--set {key}: no such key in {PARAMS_FILE}")
        if isinstance(node[leaf], dict):
            raise SystemExit(f"--set {key}: set its keys one by one ({key}.KEY=VALUE)")
        node[leaf] = value
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], metavar="train.KEY=VALUE")
    parser.add_argument("--hyperparameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--validation-only", action="store_true", help="never load the test set")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/seed_spread"))
    parser.add_argument("--out", type=Path, required=True, help="the result file (JSON)")
    args = parser.parse_args()

    raw = YAML(typ="safe", pure=True).load(Path(PARAMS_FILE).read_text())
    try:
        params = parse_params(with_overrides(raw, assignments(args.set, "--set")))
        tuned = dataclasses.asdict(Hyperparameters.load(HYPERPARAMETERS))
        changed = assignments(args.hyperparameter, "--hyperparameter")
        hp = Hyperparameters.from_dict(
            {**tuned, **changed}, "--hyperparameter", remedy="Fix the --hyperparameter values"
        )
    except DigitsError as error:
        raise SystemExit(str(error)) from None
    threads, test = params.runtime.threads, not args.validation_only
    runs = []
    for seed in args.seeds:
        recipe = dataclasses.replace(params.train, seed=seed)
        runs.append(
            train_and_score(hp, recipe, threads=threads, data=args.data, work=args.work, test=test)
        )
        print(json.dumps(runs[-1]), flush=True)
    figures = ["best_val_accuracy", "val_nll", "val_error_auroc"]
    if not args.validation_only:
        figures = ["test_accuracy", *figures, "test_nll"]
    summary = {
        "seeds": [run["seed"] for run in runs],
        **{figure: spread([run[figure] for run in runs]) for figure in figures},
        "recipe": {**dataclasses.asdict(params.train), "seed": "varies"},
        "hyperparameters": dataclasses.asdict(hp),
        "environment": runtime.environment(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
