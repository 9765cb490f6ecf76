"""Benchmark: where a training step's time goes, and how close it comes to this CPU's peak.

A controlled ablation of the default model (tuned hyperparameters, default recipe), one batch
size (`train.batch_size`):

- `input`: the training input pipeline alone (seeded shuffle, gather, one-hot), no model;
- `forward`: the inference forward pass (training=False: no augmentation, no dropout);
- `forward_train`: the forward pass in training mode (dropout, batch statistics), without the
  augmentation layer;
- `augmentation`: the `RandomAffine` layer alone, in training mode;
- `step`: one optimizer step (forward, backward, Adam update) on a fixed batch, no augmentation;
- `step_augmented`: the same with augmentation, as the train stage's model does;
- `fit`: `model.fit`'s steps as the train stage runs them (input pipeline included).

Derived: backward + update = `step - forward_train` (an upper bound: it also holds the loss, the
metric and `train_on_batch`'s per-call work); augmentation = `step_augmented - step`;
input pipeline (not hidden by prefetching) = `fit - step_augmented`.

Each variant is timed in `--rounds` rounds of `--steps` steps, the variants interleaved round by
round, and the median round is kept: a stall of this shared machine hits one round of every
variant rather than one variant, and the median discards it.

FLOPs come from TensorFlow's profiler (`ProfileOptionBuilder.float_operation`, which counts a
multiply-add as 2) on the forward graph of one image; a training step is taken as 3x the forward
pass (the backward pass costs about twice the forward: Kaplan et al. (2020), "Scaling Laws for
Neural Language Models", section 2.1). The peak is cores x clock x FP32 FLOPs per cycle per core,
2 FMA units x (16 lanes with AVX-512, else 8 with AVX2) x 2 (a fused multiply-add): the figure
for the server cores this runs on (Intel Skylake-SP Gold and later, AMD Zen 2 and later); the
clock is psutil's current frequency, so the peak is approximate (turbo and VM clocks vary).

    python benchmarks/step_time.py --out benchmarks/results/step_time.json
    python benchmarks/step_time.py --hyperparameters other.json --out other_step_time.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import psutil
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer, option_builder

from digits import runtime
from digits.batches import shuffled_batches, steps_per_epoch
from digits.data import IMAGE_SHAPE, NUM_CLASSES, Split, load_split
from digits.hyperparameters import Hyperparameters
from digits.model import RandomAffine, build_model
from digits.params import AugmentationParams, TrainParams, load_params
from digits.timing import fit_steps
from digits.training import compile_for_training

DATA = Path("data/prepared")
HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one image's inference forward pass, by TensorFlow's profiler."""
    forward = tf.function(lambda images: model(images, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec([1, *IMAGE_SHAPE], tf.uint8)).graph
    options = (
        option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def peak_flops(threads: int) -> dict[str, Any]:
    """FP32 peak FLOP/s of the cores `threads` threads can use, from their count, clock and
    vector width (see the module docstring)."""
    environment = runtime.environment()
    lanes = 16 if "avx512f" in environment["cpu_extensions"].split() else 8
    cores = min(psutil.cpu_count(logical=False) or 1, threads)  # hyperthreads share FMA units
    frequency = psutil.cpu_freq()
    if frequency is None:
        raise SystemExit("step_time: this system does not report its CPU clock (psutil)")
    clock_hz = frequency.current * 1e6
    per_cycle = 2 * lanes * 2
    return {
        "cores": cores,
        "clock_ghz": round(clock_hz / 1e9, 2),
        "flops_per_cycle_per_core": per_cycle,
        "peak_gflops": round(cores * clock_hz * per_cycle / 1e9, 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hyperparameters", type=Path, default=HYPERPARAMETERS, help="JSON")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_time.json"))
    return parser.parse_args()


def timed(work: Callable[[], Any], steps: int) -> float:
    """Mean seconds of `steps` calls of `work`, its last result fetched so the time includes it."""
    start = time.perf_counter()
    for _ in range(steps):
        result = work()
    np.asarray(result[0] if isinstance(result, tuple | list) else result)
    return (time.perf_counter() - start) / steps


def input_pipeline(train: Split, size: int, seed: int, steps: int) -> float:
    """Mean seconds a batch of the training input pipeline. A fresh iterator each round, its
    first batch untimed: the prefetch buffer starts empty, so the steps timed are the pipeline's
    own."""
    batches = iter(shuffled_batches(train, size, seed, range(1), one_hot=True))
    next(batches)
    return timed(lambda: next(batches), steps)


def variants(
    hp: Hyperparameters, recipe: TrainParams, train: Split, steps: int
) -> tuple[dict[str, Callable[[], float]], keras.Model]:
    """The measures of the ablation (see the module docstring), each giving mean seconds a step,
    and the inference model (for its FLOPs). Models are compiled in a fixed order after
    `runtime.configure`, so their weights are the same from run to run."""
    size = recipe.batch_size
    images = tf.constant(train.images[:size])
    one_hot = tf.one_hot(tf.constant(train.labels[:size], tf.int32), NUM_CLASSES)
    floats = tf.reshape(tf.cast(images, tf.float32) / 255, [size, *IMAGE_SHAPE, 1])

    plain = compile_for_training(
        hp, dataclasses.replace(recipe, augmentation=AugmentationParams(0, 0, 0)), train
    )
    augmented = compile_for_training(hp, recipe, train)
    fitted = compile_for_training(hp, recipe, train)
    inference = build_model(hp)
    affine = recipe.augmentation
    augment = RandomAffine(
        affine.rotation_degrees, affine.shift_fraction, affine.zoom_fraction, seed=recipe.seed
    )
    forward = tf.function(lambda x: inference(x, training=False))
    forward_train = tf.function(lambda x: plain(x, training=True))
    augmentation = tf.function(lambda x: augment(x, training=True))
    if steps >= steps_per_epoch(train, size):
        raise SystemExit(f"step_time: --steps must be below {steps_per_epoch(train, size)}")
    fit_batches = shuffled_batches(train, size, recipe.seed, range(1), one_hot=True)
    measures: dict[str, Callable[[], float]] = {
        "input": lambda: input_pipeline(train, size, recipe.seed, steps),
        "forward": lambda: timed(lambda: forward(images), steps),
        "forward_train": lambda: timed(lambda: forward_train(images), steps),
        "augmentation": lambda: timed(lambda: augmentation(floats), steps),
        "step": lambda: timed(lambda: plain.train_on_batch(images, one_hot), steps),
        "step_augmented": lambda: timed(lambda: augmented.train_on_batch(images, one_hot), steps),
        "fit": lambda: fit_steps(fitted, fit_batches, steps),
    }
    return measures, inference


def measure_rounds(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Seconds a step of each measure in each of `rounds` rounds, the measures interleaved round
    by round, after one untimed warm-up call of each (tracing and the first allocations)."""
    for measure in measures.values():
        measure()
    times: dict[str, list[float]] = {name: [] for name in measures}
    for index in range(rounds):
        for name, measure in measures.items():
            times[name].append(measure())
        print(f"step_time: round {index + 1}/{rounds} done", flush=True)
    return times


def report(
    rounds: dict[str, list[float]], flops: int, peak: dict[str, Any], size: int, train: Split
) -> dict[str, Any]:
    """The result's figures: median milliseconds a step of each measure, the fit step split into
    its parts, and achieved FLOP/s against the peak."""
    ms = {name: round(1000 * statistics.median(times), 2) for name, times in rounds.items()}
    split = {
        "forward_train": ms["forward_train"],
        "backward_update_and_overhead": round(ms["step"] - ms["forward_train"], 2),
        "augmentation": round(ms["step_augmented"] - ms["step"], 2),
        "input_pipeline_not_hidden": round(ms["fit"] - ms["step_augmented"], 2),
    }
    achieved = 3 * flops * size / (ms["step"] / 1000) / 1e9
    return {
        "batch_size": size,
        "median_ms_per_step": ms,
        "fit_step_split_ms": split,
        "fit_step_split_share": {k: round(v / ms["fit"], 3) for k, v in split.items()},
        "forward_mflops_per_image": round(flops / 1e6, 2),
        "train_step_gflops_per_second": round(achieved, 1),
        "fit_gflops_per_second": round(3 * flops * size / (ms["fit"] / 1000) / 1e9, 1),
        "peak": peak,
        "step_share_of_peak": round(achieved / peak["peak_gflops"], 3),
        "steps_per_epoch": steps_per_epoch(train, size),
        "rounds": {name: [round(1000 * t, 2) for t in times] for name, times in rounds.items()},
    }


def main() -> None:
    args = parse_args()
    params = load_params()
    recipe = params.train
    runtime.configure(recipe.seed, params.runtime.threads)
    train = load_split(DATA / "train.npz")
    hp = Hyperparameters.load(args.hyperparameters)
    measures, inference = variants(hp, recipe, train, args.steps)
    flops = forward_flops(inference)  # before hours of timing: a failure here costs nothing
    peak = peak_flops(params.runtime.threads)
    rounds = measure_rounds(measures, args.rounds)
    result = {
        **report(rounds, flops, peak, recipe.batch_size, train),
        "hyperparameters": json.loads(args.hyperparameters.read_text()),
        "environment": runtime.environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
