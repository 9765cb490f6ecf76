"""Benchmark: how a model holds up off MNIST, on MNIST-C's fifteen corruptions.

MNIST-C (Mu and Gilmer (2019), "MNIST-C: A Robustness Benchmark for Computer Vision",
arXiv:1906.02337) corrupts MNIST's test images fifteen ways (`corruptions.py` beside this file,
each at the benchmark's severity). This script scores a model on each corrupted copy of the test
split, and separately of the validation split, beside its clean accuracy: per corruption the
accuracy, the errors and the image count, and the mean accuracy over the fifteen (MNIST-C's
summary figure). The corruptions are drawn from `--seed`, so a rerun gives the same images.

Default: the pipeline's calibrated model (models/model.keras; its md5 is recorded with whether
dvc.lock lists the same), written to benchmarks/results/mnist_c.json with one picture of each
corruption (benchmarks/results/mnist_c.png). Needs `dvc repro` first.

    python benchmarks/mnist_c.py

With `--arms NAME=RESULT.json ...` it scores, on the corrupted validation split only (the test
split is never read), every run that `benchmarks/seed_spread.py` results trained (their best
epochs), with each run's mean epoch time: the figures that decide whether a training-time change
makes the model more robust (see `decide`). The first arm is the baseline. `--arms-split test`
scores the same runs on the corrupted test split, without a decision: figures to report once the
decision is made.

    python benchmarks/seed_spread.py --validation-only --seeds 42 1 2 \
        --out benchmarks/results/mnist_c_seed_spread_baseline.json
    python benchmarks/seed_spread.py --validation-only --seeds 42 1 2 \
        --set train.augmentation.contrast_fraction=0.8 --set train.augmentation.noise_std=0 \
        --out benchmarks/results/mnist_c_seed_spread_contrast.json
    python benchmarks/mnist_c.py \
        --arms baseline=benchmarks/results/mnist_c_seed_spread_baseline.json \
               contrast=benchmarks/results/mnist_c_seed_spread_contrast.json \
        --out benchmarks/results/mnist_c_augmentation.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

import keras
import numpy as np
from corruptions import CORRUPTIONS, corrupt
from matplotlib.figure import Figure
from ruamel.yaml import YAML
from step_time import fit_steps
from summary import spread

from digits import runtime
from digits.batches import shuffled_batches, steps_per_epoch
from digits.data import Split, load_split
from digits.errors import DigitsError
from digits.files import atomic_path, write_json
from digits.hyperparameters import Hyperparameters
from digits.model import load_model
from digits.params import AugmentationParams, TrainParams
from digits.training import BEST, STATE, compile_for_training

MODEL = Path("models/model.keras")
RESULTS = Path("benchmarks/results")
# The decision's bars: a gain in mean corrupted validation accuracy of at least 2 points, clean
# validation accuracy no lower than one seed standard deviation, epochs at most 1.1x as long.
MIN_GAIN, MAX_TIME_RATIO = 0.02, 1.1


def corrupted_sets(split: Split, seed: int) -> dict[str, np.ndarray]:
    """The split's images as they are ("clean") and under each corruption, N x 28 x 28 uint8."""
    sets = {"clean": split.images}
    for name in CORRUPTIONS:
        sets[name] = corrupt(split.images, name, seed)
        print(f"mnist_c: {name}: {len(split)} images corrupted", flush=True)
    return sets


def scores(model: keras.Model, sets: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, errors and n on each set; the mean accuracy over the corrupted ones."""
    figures = {}
    for name, images in sets.items():
        predicted = model.predict(images, batch_size=1000, verbose=0).argmax(axis=1)
        errors = int((predicted != labels).sum())
        figures[name] = {"accuracy": round(1 - errors / len(labels), 6), "errors": errors}
        figures[name]["n"] = len(labels)
    corrupted = [figures[name]["accuracy"] for name in CORRUPTIONS]
    return {
        "clean_accuracy": figures["clean"]["accuracy"],
        "mean_corrupted_accuracy": round(statistics.mean(corrupted), 6),
        "clean": figures["clean"],
        "corruptions": {name: figures[name] for name in CORRUPTIONS},
    }


def model_record(path: Path) -> dict[str, Any]:
    """The model file, its md5 and whether dvc.lock records the same md5 for it (None when
    dvc.lock does not list the file)."""
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    lock = Path("dvc.lock")
    stages = (
        YAML(typ="safe", pure=True).load(lock.read_text()).get("stages", {})
        if lock.is_file()
        else {}
    )
    listed = {
        out.get("md5")
        for stage in stages.values()
        for out in stage.get("outs", [])
        if Path(out["path"]) == path
    }
    return {"path": str(path), "md5": md5, "matches_dvc_lock": (md5 in listed) if listed else None}


def save_grid(split: Split, sets: dict[str, np.ndarray], index: int, target: Path) -> None:
    """A PNG of image `index` of `split`, clean and under each corruption, titled by name, in two
    rows."""
    columns = (len(sets) + 1) // 2
    fig = Figure(figsize=(1.05 * columns, 2.7), layout="constrained")
    axes = fig.subplots(2, columns).ravel()
    for axis, (name, images) in zip(axes, sets.items(), strict=False):
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axis.set_title(name.replace("_", " "), fontsize=8)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])  # the frame shows where white corruption meets the white page
    for axis in axes[len(sets) :]:
        axis.set_visible(False)
    fig.suptitle(f"MNIST-C corruptions of one test digit (label {split.labels[index]})", size=9)
    with atomic_path(target) as temporary:
        fig.savefig(temporary, format="png", dpi=110)


def benchmark_model(args: argparse.Namespace) -> dict[str, Any]:
    """The default mode: one model on the corrupted test and validation splits."""
    if not args.model.is_file():
        raise SystemExit(f"mnist_c: {args.model} not found: run `dvc repro` (or pass --model)")
    model = load_model(args.model)
    result: dict[str, Any] = {"model": model_record(args.model), "seed": args.seed}
    for split_name, path in (("test", args.test), ("validation", args.val)):
        split = load_split(path)
        sets = corrupted_sets(split, args.seed)
        result[split_name] = {"split": str(path), **scores(model, sets, split.labels)}
        if split_name == "test":
            save_grid(split, sets, 0, args.png)
        figures = result[split_name]
        print(f"mnist_c: {split_name}: clean {figures['clean_accuracy']:.4f}, "
              f"mean corrupted {figures['mean_corrupted_accuracy']:.4f}", flush=True)  # fmt: skip
    result["environment"] = runtime.environment()
    return result


def arm_runs(name: str, result_file: Path) -> list[dict[str, Any]]:
    """The runs a seed_spread.py result lists: seed, run folder, mean epoch seconds."""
    try:
        result = json.loads(result_file.read_text())
        runs = [(run["seed"], Path(run["run"])) for run in result["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"mnist_c: --arms {name}={result_file}: not a seed_spread.py result with run "
            f"folders ({error}); write it with "
            f"benchmarks/seed_spread.py --validation-only --out {result_file}"
        ) from None
    listed = []
    for seed, run in runs:
        try:
            epochs = json.loads((run / STATE).read_text())["epoch_seconds"]
        except (OSError, ValueError, KeyError) as error:
            raise SystemExit(
                f"mnist_c: {run}: no finished training state ({error}); rerun the seed_spread.py "
                f"command that wrote {result_file}, which resumes it"
            ) from None
        listed.append({"seed": seed, "run": str(run), "epoch_seconds": statistics.mean(epochs)})
    return listed


def score_arm(
    runs: list[dict[str, Any]], sets: dict[str, np.ndarray], labels: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each run's best epoch scored on `sets`; the arm's spread of the figures."""
    scored = []
    for run in runs:
        figures = scores(load_model(Path(run["run"]) / BEST), sets, labels)
        scored.append({**run, "epoch_seconds": round(run["epoch_seconds"], 3), **figures})
        print(f"mnist_c: {run['run']}: clean {figures['clean_accuracy']:.4f}, "
              f"mean corrupted {figures['mean_corrupted_accuracy']:.4f}", flush=True)  # fmt: skip
    summary = {
        key: spread([run[key] for run in scored])
        for key in ("clean_accuracy", "mean_corrupted_accuracy", "epoch_seconds")
    }
    summary["corruptions"] = {
        name: spread([run["corruptions"][name]["accuracy"] for run in scored])
        for name in CORRUPTIONS
    }
    return summary, scored


def time_arms(
    recipes: dict[str, dict[str, Any]], train: Split, rounds: int, steps: int
) -> dict[str, Any]:
    """Seconds per training epoch of each arm's recipe (a seed_spread.py result's `recipe` and
    `hyperparameters`), measured one arm after the other: `model.fit` steps as training runs
    them (input pipeline included), `rounds` rounds of `steps` steps with the arms interleaved
    round by round after an untimed warm-up round; the median round's mean step x the steps of
    an epoch. A stall of the shared machine hits one round of every arm; the median drops it.
    """
    fits = {}
    for name, result in recipes.items():
        recipe = dict(result["recipe"], seed=42)
        recipe["augmentation"] = AugmentationParams(**recipe["augmentation"])
        params = TrainParams(**recipe)
        hp = Hyperparameters.from_dict(result["hyperparameters"], f"--arms {name}")
        model = compile_for_training(hp, params, train)
        batches = shuffled_batches(train, params.batch_size, params.seed, range(1), one_hot=True)
        fits[name] = (model, batches, steps_per_epoch(train, params.batch_size))
    times: dict[str, list[float]] = {name: [] for name in fits}
    for index in range(rounds + 1):
        for name, (model, batches, _) in fits.items():
            seconds = fit_steps(model, batches, steps)
            if index:
                times[name].append(round(seconds, 5))
    epoch = {name: round(statistics.median(times[name]) * fits[name][2], 3) for name in fits}
    return {"rounds": rounds, "steps": steps, "epoch_seconds": epoch, "step_seconds": times}


def decide(baseline: dict[str, Any], candidate: dict[str, Any], ratio: float) -> dict[str, Any]:
    """Adopt the candidate when its mean corrupted validation accuracy is >= 2 points above the
    baseline's and its clean validation accuracy at most one baseline seed sd below (means over
    the training seeds), and `ratio`, its epoch time over the baseline's measured one after the
    other (`time_arms`), is at most 1.1. The ratio of the seed runs' mean epoch times is
    recorded beside it: those runs trained at other times on a shared machine."""
    gain = (
        candidate["mean_corrupted_accuracy"]["mean"] - baseline["mean_corrupted_accuracy"]["mean"]
    )
    drop = baseline["clean_accuracy"]["mean"] - candidate["clean_accuracy"]["mean"]
    runs_ratio = candidate["epoch_seconds"]["mean"] / baseline["epoch_seconds"]["mean"]
    checks = {
        "corrupted_gain": {"value": round(gain, 6), "at_least": MIN_GAIN, "pass": gain >= MIN_GAIN},
        "clean_drop": {
            "value": round(drop, 6),
            "at_most": baseline["clean_accuracy"]["sd"],
            "pass": drop <= baseline["clean_accuracy"]["sd"],
        },
        "epoch_time_ratio": {
            "value": round(ratio, 4), "at_most": MAX_TIME_RATIO, "pass": ratio <= MAX_TIME_RATIO,
            "seed_runs_value": round(runs_ratio, 4),
        },
    }  # fmt: skip
    return {**checks, "adopt": all(check["pass"] for check in checks.values())}


def benchmark_arms(args: argparse.Namespace) -> dict[str, Any]:
    """The `--arms` mode: every run of every arm on the corrupted validation split (and the
    decision), or on the corrupted test split with `--arms-split test` (no decision)."""
    arms = []
    for pair in args.arms:
        name, equals, file = pair.partition("=")
        if not (equals and name and file):
            raise SystemExit(f"mnist_c: --arms: expected NAME=RESULT.json, got {pair!r}")
        arms.append((name, Path(file), arm_runs(name, Path(file))))
    if len(arms) < 2:
        raise SystemExit("mnist_c: --arms: give a baseline and at least one candidate")
    path = args.val if args.arms_split == "validation" else args.test
    split = load_split(path)
    sets = corrupted_sets(split, args.seed)
    result: dict[str, Any] = {"split": str(path), "seed": args.seed, "arms": {}}
    for name, file, runs in arms:
        summary, scored = score_arm(runs, sets, split.labels)
        recipe = json.loads(file.read_text()).get("recipe")
        result["arms"][name] = {"result": str(file), "recipe": recipe, **summary, "runs": scored}
    if args.arms_split == "validation":
        recipes = {name: json.loads(file.read_text()) for name, file, _ in arms}
        timing = time_arms(recipes, load_split(args.train), args.time_rounds, args.time_steps)
        result["epoch_time_one_after_the_other"] = timing
        seconds = timing["epoch_seconds"]
        baseline = next(iter(result["arms"]))
        result["decision"] = {
            name: decide(result["arms"][baseline], arm, seconds[name] / seconds[baseline])
            for name, arm in result["arms"].items()
            if name != baseline
        }
    result["environment"] = runtime.environment()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--test", type=Path, default=Path("data/prepared/test.npz"))
    parser.add_argument("--val", type=Path, default=Path("data/prepared/val.npz"))
    parser.add_argument("--seed", type=int, default=0, help="the corruptions' random draws")
    parser.add_argument("--arms", nargs="+", metavar="NAME=RESULT.json")
    parser.add_argument("--arms-split", choices=["validation", "test"], default="validation")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--time-rounds", type=int, default=7, help="--arms: epoch timing rounds")
    parser.add_argument("--time-steps", type=int, default=40, help="--arms: steps a round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--png", type=Path, default=RESULTS / "mnist_c.png")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/mnist_c.json")
    args = parser.parse_args()
    runtime.configure(args.seed, args.threads)
    try:
        if args.arms:
            result = benchmark_arms(args)
            suffix = "" if args.arms_split == "validation" else "_test"
            out = args.out or RESULTS / f"mnist_c_augmentation{suffix}.json"
        else:
            result = benchmark_model(args)
            out = args.out or RESULTS / "mnist_c.json"
    except DigitsError as error:
        raise SystemExit(f"mnist_c: {error}") from None
    write_json(out, result)
    print(f"mnist_c: wrote {out}")


if __name__ == "__main__":
    main()
