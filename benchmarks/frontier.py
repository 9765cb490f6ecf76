"""Benchmark: the accuracy-time frontier. Test accuracy against training seconds and against
epochs, over several seeds, for the project's default recipe and two published baselines:

- `keras.io simple convnet`: https://keras.io/examples/vision/mnist_convnet/ with its recipe
  (Adam, batch 128, 15 epochs, dropout 0.5);
- `fast recipe`: a Keras reimplementation of "How to train a CNN to 99% accuracy on MNIST in less
  than a second on a laptop" (tuomaso/train_mnist_fast, final notebook): conv 5x5x24 and conv
  3x3x32 (valid padding), each followed by max-pooling then ReLU, dense 256, no dropout, Adam
  (lr 0.01, betas 0.7/0.9 held fixed: `cycle_momentum=False`), batch 256, a one-cycle schedule
  over one epoch. The original uses PyTorch's OneCycleLR (cosine warm-up over 30% of the steps
  from lr/25, then cosine decay to lr/25/1e4); this uses Keras' `CosineDecay` with the same end
  points and a linear warm-up.

Every model reads the same uint8 batches of the 55,000 training images (pixels scaled to [0, 1]
inside the model) and skips the validation pass; test accuracy is checked four times an epoch
on a clock that stops while checking. Only this benchmark looks at the test set during
training; the pipeline never does. Each run is its own process (peak memory is its own), and is
kept in `--work` when it ends, so a killed benchmark resumes with the next run.

This shared machine stalls at random (a quarter-epoch that usually takes 2 s sometimes takes 12),
so the seconds axis is each model's median pace: the quarter-epochs done, times the median
quarter-epoch duration over all of that model's runs.

Needs the prepared splits and tuned hyperparameters: run `dvc repro tune` first.

    python benchmarks/frontier.py --out benchmarks/results/frontier.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from digits.spread import spread

THRESHOLDS = (0.990, 0.995)
CHECKS_PER_EPOCH = 4
OURS = "digits default"
KERAS_IO = "keras.io simple convnet"
FAST = "fast recipe"
MODELS = (OURS, KERAS_IO, FAST)
HYPERPARAMETERS = Path("models/best_hyperparameters.json")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB: getrusage(2))."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(which: str, train: Any, seed: int) -> tuple[Any, int, int]:
    """The compiled model, epochs and batch size of `which` recipe."""
    import dataclasses

    from digits.hyperparameters import Hyperparameters
    from digits.params import load_params
    from digits.training import compile_for_training

    if which == OURS:
        params = dataclasses.replace(load_params().train, seed=seed)
        model = compile_for_training(Hyperparameters.load(HYPERPARAMETERS), params, train)
        return model, params.epochs, params.batch_size
    if which == KERAS_IO:
        return keras_io_model(), 15, 128
    return fast_model(len(train))


def uint8_inputs() -> list[Any]:
    """The first layers of both baselines: they read the same uint8 batches as ours, so their
    preprocessing is layers here."""
    import keras

    return [keras.Input(shape=(28, 28), dtype="uint8"), keras.layers.Rescaling(1 / 255)]


def keras_io_model() -> Any:
    """keras.io's simple MNIST convnet, compiled as there (Adam at Keras' defaults)."""
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            *uint8_inputs(),
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
    return model


def fast_model(images: int) -> tuple[Any, int, int]:
    """The fast recipe for `images` training images: its compiled model (Keras' `CosineDecay`:
    a linear warm-up over 30% of the steps, then cosine decay; see the module docstring),
    epochs and batch size."""
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            *uint8_inputs(),
            layers.Normalization(mean=0.1307, variance=0.3081**2),  # the original's inputs
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(24, 5),
            layers.MaxPooling2D(),
            layers.ReLU(),
            layers.Conv2D(32, 3),
            layers.MaxPooling2D(),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    epochs, batch_size, peak = 1, 256, 0.01
    steps = epochs * -(-images // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 25,
        warmup_target=peak,
        warmup_steps=round(0.3 * steps),
        decay_steps=steps - round(0.3 * steps),
        alpha=1 / 25 / 1e4,
    )
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.7, beta_2=0.9)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model, epochs, batch_size


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
            self.curve.append((at_epoch, round(self.training_seconds, 2), accuracy))
            print(f"{label}: epoch {at_epoch:.2f} test accuracy {accuracy:.4f}", file=sys.stderr)
            self.started = time.perf_counter()

    return Clock()


def measure(which: str, seed: int, data: Path) -> dict[str, Any]:
    """Train one model with its own recipe and `seed`; its curve, parameters and peak memory."""
    from digits import runtime
    from digits.batches import shuffled_batches, steps_per_epoch
    from digits.data import load_split
    from digits.params import load_params

    runtime.configure(seed, load_params().runtime.threads)
    train, test = load_split(data / "train.npz"), load_split(data / "test.npz")
    model, epochs, batch_size = build(which, train, seed)
    steps = steps_per_epoch(train, batch_size)
    clock = test_accuracy_clock(test, steps, f"{which}, seed {seed}")
    model.fit(
        shuffled_batches(train, batch_size, seed, range(epochs), one_hot=True),
        epochs=epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the batches are already in each epoch's seeded order
        callbacks=[clock],
        verbose=0,
    )
    return {
        "model": which,
        "seed": seed,
        "parameters": model.count_params(),
        "epochs": epochs,
        "batch_size": batch_size,
        "training_images": len(train),
        "peak_rss_mib": round(peak_rss_mib()),
        "curve": clock.curve,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's runs: the mean curve over seeds at the median pace, and its milestones."""
    durations = np.concatenate(
        [np.diff([row[1] for row in run["curve"]], prepend=0.0) for run in runs]
    )
    median_check = float(np.median(durations))
    checks = min(len(run["curve"]) for run in runs)
    mean_accuracy = [
        round(statistics.mean(run["curve"][k][2] for run in runs), 5) for k in range(checks)
    ]
    epochs = [runs[0]["curve"][k][0] for k in range(checks)]
    seconds = [round((k + 1) * median_check, 1) for k in range(checks)]
    first = runs[0]
    summary: dict[str, Any] = {
        "seeds": [run["seed"] for run in runs],
        "parameters": first["parameters"],
        "median_pace_images_per_second": round(
            first["training_images"] / CHECKS_PER_EPOCH / median_check
        ),
        "accuracy_after_one_epoch": spread([run["curve"][CHECKS_PER_EPOCH - 1][2] for run in runs]),
        "final_accuracy": spread([run["curve"][-1][2] for run in runs]),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "curve": {"epochs": epochs, "median_pace_seconds": seconds, "mean_accuracy": mean_accuracy},
    }
    for threshold in THRESHOLDS:
        reached = next((k for k, value in enumerate(mean_accuracy) if value >= threshold), None)
        key = f"{threshold:.3f}"
        summary[f"epochs_to_{key}"] = None if reached is None else epochs[reached]
        summary[f"median_pace_seconds_to_{key}"] = None if reached is None else seconds[reached]
    return summary


def run_file(work: Path, which: str, seed: int, data: Path) -> Path:
    """Where one finished run is kept, named by what defines it (the code that builds, trains
    and checks it, the params, the tuned hyperparameters, the data), so a rerun after a kill
    skips finished runs and never reuses one made from other inputs; editing the summary or the
    figure keeps them."""
    import dataclasses
    import inspect

    import numpy as np

    from digits.files import content_key
    from digits.params import load_params

    params = load_params()
    builders = (build, uint8_inputs, keras_io_model, fast_model)
    code = [inspect.getsource(f) for f in (*builders, test_accuracy_clock, measure)]
    definition = [which, seed, dataclasses.asdict(params.train), params.runtime.threads,
                  HYPERPARAMETERS.read_text(), CHECKS_PER_EPOCH, code]  # fmt: skip
    inputs = [np.frombuffer((data / f"{name}.npz").read_bytes(), np.uint8)
              for name in ("train", "test")]  # fmt: skip
    return work / f"{content_key(definition, inputs)}.json"


def draw(summaries: dict[str, dict[str, Any]], seeds: int, out: Path) -> None:
    """Mean test accuracy against median-pace seconds (left) and epochs (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    figure, panels = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    axes = [
        ("median_pace_seconds", "training seconds at median pace", [5, 10, 20, 50, 100, 200, 500]),
        ("epochs", "epochs", [0.25, 0.5, 1, 2, 5, 10, 20]),
    ]
    for axis, (key, label, ticks) in zip(panels, axes, strict=True):
        for name, summary in summaries.items():
            curve = summary["curve"]
            axis.plot(curve[key], [100 * a for a in curve["mean_accuracy"]], marker=".", label=name)
        for level in (99.0, 99.5):
            axis.axhline(level, color="grey", linestyle=":", linewidth=1)
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(FixedLocator(ticks))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([f"{tick:g}" for tick in ticks])
        axis.set_xlabel(label + " (log scale)")
        axis.grid(alpha=0.3)
    panels[0].set_ylabel(f"test accuracy, %, mean of {seeds} seeds")
    panels[0].set_ylim(95, 100)
    panels[1].legend(loc="lower right")
    figure.suptitle(
        "Accuracy-time frontier on this machine (higher and further left is better; "
        "checks below 95% not shown)"
    )
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/frontier.json"))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/frontier"))
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.seeds[0], args.data)))
        return

    from digits import runtime

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.models}
    for seed in args.seeds:  # seeds outermost: a slow spell of the machine hits every model
        for name in args.models:
            kept = run_file(args.work, name, seed, args.data)
            if not kept.is_file():
                command = [sys.executable, __file__, "--only", name, "--seeds", str(seed),
                           "--data", str(args.data)]  # fmt: skip
                run = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(run.stdout.strip().splitlines()[-1])
            runs[name].append(json.loads(kept.read_text()))
    summaries = {name: summarise(model_runs) for name, model_runs in runs.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"summary": summaries, "environment": runtime.environment(), "runs": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    draw(summaries, len(args.seeds), args.out.with_suffix(".png"))

    rows = [
        ("parameters", "parameters"),
        ("training images/s at median pace", "median_pace_images_per_second"),
        ("epochs to 99.0% (mean curve)", "epochs_to_0.990"),
        ("seconds to 99.0% at median pace", "median_pace_seconds_to_0.990"),
        ("epochs to 99.5% (mean curve)", "epochs_to_0.995"),
        ("seconds to 99.5% at median pace", "median_pace_seconds_to_0.995"),
        ("peak RSS (MiB)", "peak_rss_mib"),
    ]
    print("| measure | " + " | ".join(summaries) + " |")
    print("|" + " --- |" * (len(summaries) + 1))
    for label, key in rows:
        cells = ["not reached" if s[key] is None else str(s[key]) for s in summaries.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for label, key in [("after one epoch", "accuracy_after_one_epoch"),
                       ("final", "final_accuracy")]:  # fmt: skip
        cells = [f"{s[key]['mean']:.4f} +- {s[key]['sd'] or 0:.4f}" for s in summaries.values()]
        print(f"| test accuracy {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
