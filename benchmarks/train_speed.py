"""Benchmark: the project's default training against the keras.io simple MNIST convnet, one run.

For each model, in its own process (so peak memory is its own): training images/s, training
seconds until test accuracy first reaches 99.0% and 99.5% (checked after every epoch, a clock
that stops while checking), final test accuracy and peak RSS. Only this benchmark looks at the
test set during training; the pipeline never does.

Needs the prepared splits and tuned hyperparameters: run `dvc repro train` first.

    python benchmarks/train_speed.py --out benchmarks/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

THRESHOLDS = (0.990, 0.995)
BASELINE = "keras.io simple convnet"
OURS = "digits default"


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(which: str) -> dict[str, Any]:
    """Train one model with its own recipe; return its measurements."""
    import keras

    from digits import runtime
    from digits.data import load_splits
    from digits.model import Hyperparameters
    from digits.params import load_params
    from digits.training import compile_for_training, one_hot

    params = load_params()
    runtime.configure(params.train.seed, params.runtime.threads)
    splits = load_splits()
    train, val, test = splits["train"], splits["val"], splits["test"]

    if which == OURS:
        model = compile_for_training(
            Hyperparameters.load("models/best_hyperparameters.json"), params.train, len(train)
        )
        epochs, batch_size = params.train.epochs, params.train.batch_size

        def inputs(images: Any) -> Any:
            return images
    else:  # https://keras.io/examples/vision/mnist_convnet/: Adam, batch 128, 15 epochs
        layers = keras.layers
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28, 1)),
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
        epochs, batch_size = 15, 128

        def inputs(images: Any) -> Any:
            return (images.astype("float32") / 255)[..., None]

    test_x, test_y = inputs(test.images), test.labels

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.training_seconds, self.curve = 0.0, []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.training_seconds += time.perf_counter() - self.started
            predicted = self.model.predict(test_x, batch_size=1000, verbose=0).argmax(axis=1)
            accuracy = float((predicted == test_y).mean())
            self.curve.append((round(self.training_seconds, 1), accuracy))
            print(f"{which}: epoch {epoch + 1} test accuracy {accuracy:.4f}", file=sys.stderr)

    clock = Clock()
    model.fit(
        inputs(train.images),
        one_hot(train.labels),
        validation_data=(inputs(val.images), one_hot(val.labels)),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[clock],
        verbose=0,
    )
    result = {
        "model": which,
        "parameters": model.count_params(),
        "epochs": len(clock.curve),
        "images_per_second": round(len(train) * len(clock.curve) / clock.training_seconds),
        "final_test_accuracy": clock.curve[-1][1],
        "peak_rss_mib": round(peak_rss_mib()),
        "curve": clock.curve,
    }
    for threshold in THRESHOLDS:
        reached = [seconds for seconds, accuracy in clock.curve if accuracy >= threshold]
        result[f"seconds_to_{threshold:.3f}"] = reached[0] if reached else None
    return result


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
        ("seconds to 99.0% test accuracy", "seconds_to_0.990"),
        ("seconds to 99.5% test accuracy", "seconds_to_0.995"),
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
