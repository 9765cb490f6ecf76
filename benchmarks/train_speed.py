"""Benchmark: the project's default training against the keras.io simple MNIST convnet, one run.

For each model, in its own process (so peak memory is its own): training images/s, training
seconds until test accuracy first reaches 99.0% and 99.5% (checked four times an epoch, so the
time to a threshold is not rounded up to a whole epoch; the clock stops while checking), final
test accuracy and peak RSS. Both models read the same uint8 batches of the training split and
skip the validation pass. Only this benchmark looks at the test set during training; the
pipeline never does.

This shared machine stalls at random (a quarter-epoch that usually takes 2 s sometimes takes 12),
so the time to a threshold is also given at each model's median pace: the quarter-epochs it took
to get there, times its median quarter-epoch duration.

Needs the prepared splits and tuned hyperparameters: run `dvc repro train` first.

    python benchmarks/train_speed.py --out benchmarks/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

THRESHOLDS = (0.990, 0.995)
CHECKS_PER_EPOCH = 4
BASELINE = "keras.io simple convnet"
OURS = "digits default"
DATA = Path("data/prepared")
HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB: getrusage(2))."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(which: str, train: Any) -> tuple[Any, int, int]:
    """The compiled model, epochs and batch size of `which` recipe."""
    import keras

    from digits.hyperparameters import Hyperparameters
    from digits.params import load_params
    from digits.training import compile_for_training

    if which == OURS:
        params = load_params().train
        model = compile_for_training(Hyperparameters.load(HYPERPARAMETERS), params, train)
        return model, params.epochs, params.batch_size
    # https://keras.io/examples/vision/mnist_convnet/: Adam, batch 128, 15 epochs
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28), dtype="uint8"),
            # The example's preprocessing (x / 255, channel axis) as layers, so both models
            # read the same uint8 batches.
            layers.Rescaling(1 / 255),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model, 15, 128


def test_accuracy_clock(test: Any, steps_per_epoch: int, label: str) -> Any:
    """A callback that checks test accuracy `CHECKS_PER_EPOCH` times an epoch and keeps
    (epochs so far, e.g. 2.25; training seconds; test accuracy in [0, 1]) rows in `curve`; its
    clock stops while it checks. `test` holds N x 28 x 28 uint8 images and N uint8 labels."""
    import keras

    from digits.batches import ordered_batches

    test_batches = ordered_batches(test, 1000)
    check_steps = {
        round(steps_per_epoch * k / CHECKS_PER_EPOCH) for k in range(1, CHECKS_PER_EPOCH + 1)
    }

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.training_seconds, self.curve = 0.0, []
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch + 1 not in check_steps:
                return
            self.training_seconds += time.perf_counter() - self.started
            predicted = self.model.predict(test_batches, verbose=0).argmax(axis=1)
            accuracy = float((predicted == test.labels).mean())
            at_epoch = round(self.epoch + (batch + 1) / steps_per_epoch, 2)
            self.curve.append((at_epoch, round(self.training_seconds, 1), accuracy))
            print(f"{label}: epoch {at_epoch:.2f} test accuracy {accuracy:.4f}", file=sys.stderr)
            self.started = time.perf_counter()

    return Clock()


def summarise(which: str, model: Any, epochs: int, train_size: int, curve: list) -> dict:
    """Images/s (training images per training second: no validation pass, test checks off the
    clock), and epochs and seconds to each threshold, on the clock and at the model's median
    pace; peak RSS in MiB."""
    check_seconds = [seconds for _, seconds, _ in curve]
    median_check = float(np.median(np.diff(check_seconds, prepend=0.0)))
    result = {
        "model": which,
        "parameters": model.count_params(),
        "epochs": epochs,
        "images_per_second": round(train_size * epochs / check_seconds[-1]),
        "median_pace_images_per_second": round(train_size / CHECKS_PER_EPOCH / median_check),
        "final_test_accuracy": curve[-1][2],
        "peak_rss_mib": round(peak_rss_mib()),
        "curve": curve,
    }
    for threshold in THRESHOLDS:
        key = f"{threshold:.3f}"
        reached = next(
            ((checks, row) for checks, row in enumerate(curve, start=1) if row[2] >= threshold),
            None,
        )
        result[f"epochs_to_{key}"] = reached[1][0] if reached else None
        result[f"seconds_to_{key}"] = reached[1][1] if reached else None
        result[f"median_pace_seconds_to_{key}"] = (
            round(reached[0] * median_check, 1) if reached else None
        )
    return result


def measure(which: str) -> dict[str, Any]:
    """Train one model with its own recipe on the prepared splits; return its measurements."""
    from digits import runtime
    from digits.batches import shuffled_batches, steps_per_epoch
    from digits.data import load_split
    from digits.params import load_params

    params = load_params()
    runtime.configure(params.train.seed, params.runtime.threads)
    train, test = load_split(DATA / "train.npz"), load_split(DATA / "test.npz")
    model, epochs, batch_size = build(which, train)
    steps = steps_per_epoch(train, batch_size)
    clock = test_accuracy_clock(test, steps, which)
    model.fit(
        shuffled_batches(train, batch_size, params.train.seed, range(epochs), one_hot=True),
        epochs=epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the batches are already in each epoch's seeded order
        callbacks=[clock],
        verbose=0,
    )
    return summarise(which, model, epochs, len(train), clock.curve)


def cell(value: Any) -> Any:
    return "not reached" if value is None else value


def ratio(ours: float | None, baseline: float | None) -> str:
    return f"{ours / baseline:.2f}x" if ours and baseline else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    parser.add_argument("--only", choices=[OURS, BASELINE], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only)))
        return

    results = {}
    for which in (BASELINE, OURS):
        command = [sys.executable, __file__, "--only", which]
        run = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        results[which] = json.loads(run.stdout.strip().splitlines()[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    rows = [
        ("training images/s", "images_per_second"),
        ("training images/s at median pace", "median_pace_images_per_second"),
        ("epochs to 99.0% test accuracy", "epochs_to_0.990"),
        ("seconds to 99.0% test accuracy", "seconds_to_0.990"),
        ("seconds to 99.0% at median pace", "median_pace_seconds_to_0.990"),
        ("epochs to 99.5% test accuracy", "epochs_to_0.995"),
        ("seconds to 99.5% test accuracy", "seconds_to_0.995"),
        ("seconds to 99.5% at median pace", "median_pace_seconds_to_0.995"),
        ("final test accuracy", "final_test_accuracy"),
        ("peak RSS (MiB)", "peak_rss_mib"),
        ("parameters", "parameters"),
    ]
    base, ours = results[BASELINE], results[OURS]
    print(f"| measure | {BASELINE} | {OURS} | ours / baseline |")
    print("| --- | --- | --- | --- |")
    for label, key in rows:
        shown = f"{cell(base[key])} | {cell(ours[key])} | {ratio(ours[key], base[key])}"
        print(f"| {label} | {shown} |")


if __name__ == "__main__":
    main()
