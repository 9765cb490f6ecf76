"""Benchmark: how far would averaging several trained models go, as an opt-in ensemble?

Averages the softmax probabilities of trained models over every subset of 1 to n of them (size
1: the single models, the baseline). Two sets of models:

- by default, the six search winners that `benchmarks/search_vs_random.py` trained with the
  default recipe (the pipeline's model is one of them): an ensemble over hyperparameters of
  close relatives that share training seed 42 (so the same batches, augmentation and dropout
  draws);
- with `--seed-spread RESULT.json`, the models a `benchmarks/seed_spread.py` result trained: one
  recipe and architecture, one model per training seed, a deep ensemble (Lakshminarayanan,
  Pritzel and Blundell (2017), "Simple and Scalable Predictive Uncertainty Estimation using
  Deep Ensembles", NeurIPS).

An ensemble of k costs k trainings and k forward passes: an opt-in idea, not a default, whose
time the default pipeline does not spend.

Reported per ensemble size: validation and test accuracy over all subsets (mean, sd, min, max),
and the subset of that size with the best validation accuracy (how many subsets tie with it: one
image is 0.02 points of validation accuracy) with its test accuracy, so the choice is made on
validation and the test set only reports it. Needs `dvc repro tune` and the trainings of
`search_vs_random.py` or `seed_spread.py`.

    python benchmarks/ensemble.py --out benchmarks/results/ensemble.json
    python benchmarks/ensemble.py --seed-spread benchmarks/results/seed_spread_xeon.json \
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
from digits.data import load_split
from digits.model import load_model
from digits.spread import spread
from digits.training import BEST
from digits.winners import RESULT, winner_models


def rerun_command(result: dict[str, Any], out: Path) -> str:
    """The `seed_spread.py` command that trains the runs of `result` (a file it wrote to `out`)
    again: its seeds, recipe and hyperparameters spelled out, so today's params.yaml and tuned
    point do not matter. Runs it kept are only scored again."""
    flags = [f"--seeds {' '.join(str(seed) for seed in result['seeds'])}"]
    skipped = ("seed", "hyperparameters")  # --seeds; --hyperparameter below
    recipe = {key: value for key, value in result["recipe"].items() if key not in skipped}
    for key, value in recipe.items():
        nested = isinstance(value, dict)
        block = {f"{key}.{k}": v for k, v in value.items()} if nested else {key: value}
        flags += [f"--set train.{name}={json.dumps(setting)}" for name, setting in block.items()]
    flags += [f"--hyperparameter {k}={json.dumps(v)}" for k, v in result["hyperparameters"].items()]
    return " ".join(["python benchmarks/seed_spread.py", *flags, f"--out {out}"])


def seed_models(result: Path) -> list[Path]:
    """The best checkpoint (.keras) of each run a `seed_spread.py` result file lists.

    Raises:
        SystemExit: the file is unreadable, not a `seed_spread.py` result, has no run folders
            (written before they were recorded), or a run's checkpoint is gone (the runs live in
            the Git-ignored `benchmarks/work/`); the last two print the `seed_spread.py` command
            that trains them again.
    """
    try:
        recorded = json.loads(result.read_text())
        runs, rerun = recorded["runs"], rerun_command(recorded, result)
    except OSError as error:
        raise SystemExit(f"--seed-spread {result}: cannot read it ({error.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SystemExit(f"--seed-spread {result}: not a seed_spread.py result") from None
    if not runs or not all(isinstance(run, dict) and "run" in run for run in runs):
        raise SystemExit(
            f"--seed-spread {result}: written before seed_spread.py recorded its run folders; "
            f"train them again with\n  {rerun}"
        )
    models = [Path(run["run"]) / BEST for run in runs]
    missing = [str(model) for model in models if not model.is_file()]
    if missing:
        raise SystemExit(
            f"--seed-spread {result}: no trained model at {', '.join(missing)}; "
            f"train them again with\n  {rerun}"
        )
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-spread", type=Path, metavar="RESULT.json",
                        help="average the models of this seed_spread.py result")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    models = seed_models(args.seed_spread) if args.seed_spread else winner_models()
    splits = {name: load_split(Path("data/prepared") / f"{name}.npz") for name in ("val", "test")}
    probabilities = {name: [] for name in splits}
    for path in models:
        model = load_model(path)
        for name, split in splits.items():
            probabilities[name].append(model.predict(split.images, batch_size=1000, verbose=0))
        print(f"ensemble: predicted with {path}", flush=True)

    def accuracy(name: str, members: tuple[int, ...]) -> float:
        averaged = np.mean([probabilities[name][k] for k in members], axis=0)
        return float((averaged.argmax(axis=1) == splits[name].labels).mean())

    sizes = []
    for size in range(1, len(models) + 1):
        subsets = list(itertools.combinations(range(len(models)), size))
        val = [accuracy("val", members) for members in subsets]
        test = [accuracy("test", members) for members in subsets]
        chosen = int(np.argmax(val))
        sizes.append({
            "size": size,
            "subsets": len(subsets),
            "val_accuracy": spread(val),
            "test_accuracy": spread(test),
            "best_on_val": {"members": list(subsets[chosen]), "tied": val.count(val[chosen]),
                            "val_accuracy": val[chosen], "test_accuracy": test[chosen]},
        })  # fmt: skip
        print(f"ensemble: subsets of {size}: test mean {np.mean(test):.4f}, best-on-val subset "
              f"val {val[chosen]:.4f} test {test[chosen]:.4f}", flush=True)  # fmt: skip
    result = {
        "models_from": str(args.seed_spread or RESULT),
        "images": {name: len(split.labels) for name, split in splits.items()},
        "models": [
            {"path": str(path), **{f"{name}_accuracy": accuracy(name, (k,)) for name in splits}}
            for k, path in enumerate(models)
        ],
        "by_size": sizes,
        "environment": runtime.environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
