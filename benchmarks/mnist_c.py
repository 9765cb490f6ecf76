"""Benchmark: how a model holds up off MNIST, on MNIST-C's fifteen corruptions.

MNIST-C (Mu and Gilmer (2019), "MNIST-C: A Robustness Benchmark for Computer Vision",
arXiv:1906.02337) corrupts MNIST's test images fifteen ways. Each corruption is written here
from the paper's description, at the one severity the benchmark uses (the parameters of the
authors' generator): shot noise, impulse noise, glass blur, motion blur, shear, scale, rotate,
brightness, translate, stripe, fog, spatter, dotted line, zigzag and canny edges. Filters, warps,
salt-and-pepper noise and edge detection are scikit-image's; the fog's plasma fractal is the
diamond-square algorithm (Fournier, Fussell and Carpenter (1982), "Computer rendering of
stochastic models", CACM). `corrupt(images, name, seed)` is deterministic: the same images, name
and seed give the same bytes. Images go in and come out as N x 28 x 28 uint8 (rounded, clipped to
0..255), the pipeline's format, so a model scores them as it scores MNIST.

This script scores a model on each corrupted copy of the test split, and separately of the
validation split, beside its clean accuracy: per corruption the accuracy, the errors and the
image count, and the mean accuracy over the fifteen (MNIST-C's summary figure). The corruptions
are drawn from `--seed`, so a rerun gives the same images.

Default: the pipeline's calibrated model (models/model.keras; its md5 is recorded with whether
dvc.lock lists the same), written to benchmarks/results/mnist_c.json with one picture of each
corruption (benchmarks/results/mnist_c.png). Needs `dvc repro` first.

    python benchmarks/mnist_c.py

With `--arms NAME=SWEEP.json ...` it scores, on the corrupted validation split only (the test
split is never read), the models of `benchmarks/seed_sweep.py` results (DVC experiments of the
`train` stage, one per training seed, read from DVC's cache), with each run's mean epoch time:
the figures that decide whether a training-time change makes the model more robust (see
`decide`). The first arm is the baseline. `--arms-split test` scores the same models on the
corrupted test split, without a decision: figures to report once the decision is made.

    python benchmarks/seed_sweep.py run --name default --seeds 42 1 2 3 4 \
        --out benchmarks/results/seed_sweep_default.json
    python benchmarks/seed_sweep.py run --name no-contrast --seeds 42 1 2 \
        -S train.augmentation.contrast_fraction=0 \
        --out benchmarks/results/seed_sweep_no-contrast.json
    python benchmarks/seed_sweep.py run --name contrast-noise --seeds 42 1 2 \
        -S train.augmentation.noise_std=0.2 \
        --out benchmarks/results/seed_sweep_contrast-noise.json
    python benchmarks/mnist_c.py --seeds 42 1 2 \
        --arms affine=benchmarks/results/seed_sweep_no-contrast.json \
               contrast=benchmarks/results/seed_sweep_default.json \
               contrast-noise=benchmarks/results/seed_sweep_contrast-noise.json \
        --out benchmarks/results/mnist_c_augmentation.json

An arm is what `dvc exp run` makes of its recipe: a change the search reads searches again, so
arms may train different architectures (each sweep file names its own); the epoch times are
those of each arm's architecture. Pin one with `-S train.hyperparameters={...}` to compare
recipes alone.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from matplotlib.figure import Figure
from ruamel.yaml import YAML
from skimage.feature import canny
from skimage.filters import gaussian
from skimage.transform import warp
from skimage.util import random_noise

from digits import runtime
from digits.batches import shuffled_batches, steps_per_epoch
from digits.data import Split, load_split
from digits.errors import DigitsError
from digits.experiments import experiment_models, sweep_result
from digits.files import atomic_path, write_json
from digits.hyperparameters import Hyperparameters
from digits.model import load_model
from digits.params import AugmentationParams, TrainParams
from digits.spread import spread
from digits.timing import fit_steps
from digits.training import compile_for_training

SIDE = 28
CENTRE = (SIDE - 1) / 2  # 13.5: the pixel-grid centre every warp keeps in place


def shot_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: each pixel a Poisson count of mean 3 x intensity, over 3."""
    return np.clip(rng.poisson(x * 3) / 3, 0, 1)


def impulse_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise on 17% of the pixels (half white, half black)."""
    return random_noise(x, mode="s&p", amount=0.17, rng=rng)


def glass_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma 0.7 px), two sweeps that swap each interior pixel, with probability
    1/2, with its neighbour up and/or left (offsets drawn from {-1, 0}, as the generator's), then
    the same blur again."""
    x = gaussian(x, sigma=0.7)
    for _ in range(2):
        swaps = rng.integers(0, 2, size=(SIDE - 2, SIDE - 2)).astype(bool)
        offsets = rng.integers(-1, 1, size=(SIDE - 2, SIDE - 2, 2))
        for i, h in enumerate(range(SIDE - 1, 1, -1)):
            for j, w in enumerate(range(SIDE - 1, 1, -1)):
                if swaps[i, j]:
                    dx, dy = offsets[i, j]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
    return np.clip(gaussian(x, sigma=0.7), 0, 1)


def motion_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur at radius 10, sigma 3 and an angle drawn in [-45, 45] degrees:
    each pixel a one-sided Gaussian-weighted mean (weights exp(-i^2 / 2 sigma^2), i = 0..20) of
    the pixels i steps along the angle, rounded to the grid; edge pixels repeat outside."""
    angle = np.radians(rng.uniform(-45, 45))
    steps = np.arange(21)
    weights = np.exp(-(steps**2) / (2 * 3.0**2))
    rows = np.rint(steps * np.sin(angle)).astype(int)
    cols = np.rint(steps * np.cos(angle)).astype(int)
    padded = np.pad(x, 20, mode="edge")
    blurred = sum(
        weight * padded[20 + dy : 20 + dy + SIDE, 20 + dx : 20 + dx + SIDE]
        for weight, dy, dx in zip(weights / weights.sum(), rows, cols, strict=True)
    )
    return np.clip(blurred, 0, 1)


def _warp_about_centre(
    x: np.ndarray, linear: np.ndarray, shift: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """`x` resampled (bilinear, zero outside) through the output -> input map `linear` (2 x 2,
    acting on (column, row)) about the image centre, plus `shift` (columns, rows)."""
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = CENTRE * (1 - linear.sum(axis=1)) + np.asarray(shift)
    return np.clip(warp(x, matrix, order=1, mode="constant", cval=0.0), 0, 1)


def _sign(rng: np.random.Generator) -> int:
    return int(rng.choice([-1, 1]))


def shear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A horizontal shear of 0.4 rad, either way."""
    angle = 0.4 * _sign(rng)
    return _warp_about_centre(x, np.array([[1, -np.sin(angle)], [0, np.cos(angle)]]))


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit shrunk to 0.7 of its size about the centre (no randomness)."""
    return _warp_about_centre(x, np.eye(2) / 0.7)


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation of 0.4 rad (23 degrees) about the centre, either way."""
    angle = 0.4 * _sign(rng)
    cos, sin = np.cos(angle), np.sin(angle)
    return _warp_about_centre(x, np.array([[cos, -sin], [sin, cos]]))


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shift of 3 px both horizontally and vertically, each either way."""
    return _warp_about_centre(x, np.eye(2), (3 * _sign(rng), 3 * _sign(rng)))


def brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on HSV value, which for a grey image is +0.5 on every intensity, clipped."""
    return np.clip(x + 0.5, 0, 1)


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensities inverted in the left and right quarters (columns 0-6 and 21-27)."""
    x = x.copy()
    x[:, :7], x[:, 21:] = 1 - x[:, :7], 1 - x[:, 21:]
    return x


def plasma_fractal(rng: np.random.Generator, size: int = 256, decay: float = 1.4) -> np.ndarray:
    """A size x size (power of two) diamond-square height map in [0, 1] that wraps around; the
    noise added at each level shrinks by decay^2 (MNIST-C's generator)."""
    height = np.zeros((size, size))
    step, amplitude = size, 1.0
    while step >= 2:
        half = step // 2
        corners = height[::step, ::step]
        around = corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1)
        around += np.roll(corners, (-1, -1), (0, 1))
        height[half::step, half::step] = around / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        centres = height[half::step, half::step]
        top = corners + np.roll(corners, -1, 1) + centres + np.roll(centres, 1, 0)
        height[::step, half::step] = top / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        left = corners + np.roll(corners, -1, 0) + centres + np.roll(centres, 1, 1)
        height[half::step, ::step] = left / 4 + rng.uniform(-1, 1, corners.shape) * amplitude
        step, amplitude = half, amplitude / decay**2
    height -= height.min()
    return height / height.max()


def fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """3 x a plasma fractal's 28 x 28 corner added, then rescaled so the digit's brightest pixel
    keeps its share: x' = (x + 3 p) max(x) / (max(x) + 3)."""
    peak = x.max()
    return np.clip((x + 3 * plasma_fractal(rng)[:SIDE, :SIDE]) * peak / (peak + 3), 0, 1)


def spatter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mud: Gaussian noise (mean 0.65, sd 0.3) blurred (sigma 1), kept above 0.65, its mask
    blurred (sigma 1.5) and kept above 0.8 as blobs of grey 63/255 over the digit."""
    liquid = gaussian(rng.normal(0.65, 0.3, size=x.shape), sigma=1)
    mask = gaussian((liquid > 0.65).astype(float), sigma=1.5)
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1)


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """A 28 x 28 stroke from (column, row) (c0, r0) to (c1, r1), c0 < c1: intensity
    1 + ln(1 - d / 2.3) at vertical distance d from the line (0 beyond ~1.45 px), over columns
    floor(c0) .. ceil(c1) - 1."""
    cols, rows = np.meshgrid(np.arange(SIDE), np.arange(SIDE), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    stroke = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    stroke[:, : int(np.floor(c0))] = 0
    stroke[:, int(np.ceil(c1)) :] = 0
    return stroke


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A straight line across the image (rows at both edges drawn in 0..26) with every other
    2-column run removed."""
    r0, r1 = rng.integers(0, SIDE - 1, size=2)
    stroke = _line(0, r0, SIDE - 1, r1)
    for start in range(0, SIDE, 4):
        stroke[:, start : start + 2] = 0
    return np.clip(x + stroke, 0, 1)


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag (segments 2 px along, 2 px either side) from column 2 to 25, starting at a row
    drawn in 0..26 and rising or falling by up to 5 rows."""
    r0 = int(rng.integers(0, SIDE - 1))
    r1 = r0 + int(rng.integers(-5, 5))
    theta = np.arctan((r1 - r0) / (25 - 2))
    length = (25 - 2) / np.cos(theta)
    along = np.concatenate([[0.0], np.arange(2.0, length, 4.0), [length]])
    across = np.concatenate([[0.0], 2.0 * (-1.0) ** np.arange(len(along) - 2), [0.0]])
    cols = 2 + along * np.cos(theta) - across * np.sin(theta)
    rows = r0 + along * np.sin(theta) + across * np.cos(theta)
    for i in range(1, len(cols)):
        if cols[i] != cols[i - 1]:
            x = np.clip(x + _line(cols[i - 1], rows[i - 1], cols[i], rows[i]), 0, 1)
    return x


def canny_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit replaced by its Canny edges (scikit-image, sigma 1): white edges on black."""
    return canny(x).astype(float)


CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    function.__name__: function
    for function in (
        shot_noise, impulse_noise, glass_blur, motion_blur, shear, scale, rotate, brightness,
        translate, stripe, fog, spatter, dotted_line, zigzag, canny_edges,
    )
}  # fmt: skip


def corrupt(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """`images` (N x 28 x 28 uint8) with corruption `name` applied to each: N x 28 x 28 uint8.

    The random draws come from one generator seeded by (seed, the corruption's place in
    `CORRUPTIONS`), image after image, so the result depends on the seed and the images' order.
    Raises KeyError for a name not in `CORRUPTIONS`.
    """
    function = CORRUPTIONS[name]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    corrupted = np.empty(images.shape, dtype=np.uint8)
    for i, image in enumerate(images):
        result = function(image.astype(np.float64) / 255, rng)
        corrupted[i] = np.clip(np.rint(result * 255), 0, 255).astype(np.uint8)
    return corrupted


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


def arm_runs(result: dict[str, Any], seeds: list[int] | None) -> list[dict[str, Any]]:
    """The runs of a seed_sweep.py result (those of `seeds`, when given, in that order): seed,
    experiment name and rev, mean epoch seconds (training seconds over epochs run). Raises
    DigitsError when a seed has no run, or the seeds trained different architectures."""
    if result["hyperparameters"] is None:
        raise DigitsError(
            "the sweep's seeds trained different architectures (see each run's "
            "hyperparameters): pin one with -S train.hyperparameters={...} and run it again"
        )
    by_seed = dict(zip(result["seeds"], result["runs"], strict=True))
    chosen = seeds if seeds is not None else result["seeds"]
    missing = sorted(set(chosen) - set(by_seed))
    if missing:
        raise DigitsError(f"the sweep has no runs for seeds {missing}: run it with them")
    return [
        {"seed": seed, "name": by_seed[seed]["name"], "rev": by_seed[seed]["rev"],
         "epoch_seconds": by_seed[seed]["training_seconds"] / by_seed[seed]["epochs_run"]}
        for seed in chosen
    ]  # fmt: skip


def score_arm(
    runs: list[dict[str, Any]], sets: dict[str, np.ndarray], labels: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each run's model scored on `sets`; the arm's spread of the figures."""
    scored = []
    for run, model in experiment_models(runs):
        figures = scores(model, sets, labels)
        scored.append({**run, "epoch_seconds": round(run["epoch_seconds"], 3), **figures})
        print(f"mnist_c: {run['name']}: clean {figures['clean_accuracy']:.4f}, "
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
    """Seconds per training epoch of each arm's recipe (a seed_sweep.py result's `train` and
    `hyperparameters`), measured one arm after the other: `model.fit` steps as training runs
    them (input pipeline included), `rounds` rounds of `steps` steps with the arms interleaved
    round by round after an untimed warm-up round; the median round's mean step x the steps of
    an epoch. A stall of the shared machine hits one round of every arm; the median drops it.
    """
    fits = {}
    for name, result in recipes.items():
        recipe = dict(result["train"], seed=42)
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
    sweeps = {}
    for pair in args.arms:
        name, equals, file = pair.partition("=")
        if not (equals and name and file):
            raise SystemExit(f"mnist_c: --arms: expected NAME=SWEEP.json, got {pair!r}")
        if name in sweeps:
            raise SystemExit(f"mnist_c: --arms: the name {name!r} is given twice")
        sweeps[name] = (file, sweep_result(Path(file)))
    if len(sweeps) < 2:
        raise SystemExit("mnist_c: --arms: give a baseline and at least one candidate")
    path = args.val if args.arms_split == "validation" else args.test
    split = load_split(path)
    sets = corrupted_sets(split, args.seed)
    result: dict[str, Any] = {"split": str(path), "seed": args.seed, "arms": {}}
    for name, (file, sweep) in sweeps.items():
        summary, scored = score_arm(arm_runs(sweep, args.seeds), sets, split.labels)
        result["arms"][name] = {"result": file, "recipe": sweep["train"],
                                "hyperparameters": sweep["hyperparameters"], **summary,
                                "runs": scored}  # fmt: skip
    if args.arms_split == "validation":
        recipes = {name: sweep for name, (_, sweep) in sweeps.items()}
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
    parser.add_argument("--arms", nargs="+", metavar="NAME=SWEEP.json")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="--arms: these seeds of each sweep (default: all)"
    )
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
