"""Train the tuned CNN with augmentation, a warm-up + cosine schedule and label smoothing.

The validation split only selects the checkpoint; the test set is never seen here. Work in
progress lives in a work folder named by the run's key (see `run_key`): after every epoch it
holds the full model with optimizer state, the best epoch so far, the curves and the callbacks'
state. A killed run resumes from its last finished epoch and ends bitwise equal to an
uninterrupted one: batches and augmentation are drawn from (seed, epoch), and early stopping
and checkpoint selection carry their state across the restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from digits.batches import ordered_batches, shuffled_batches, steps_per_epoch
from digits.calibration import logits, lowest_scaled_nll
from digits.data import Split
from digits.files import atomic_path, content_key, write_json
from digits.hyperparameters import Hyperparameters
from digits.model import SELECTION_METRIC, build_model, compile_model, load_model
from digits.params import TrainParams

BEST = "best.keras"
STATE = "state.json"
CURVES = "live"
# Counter offset between epochs in every random-number generator of the model: far more draws
# than an epoch makes (a few per step), so epochs never share random numbers.
DRAWS_PER_EPOCH = 1_000_000


def learning_rate_schedule(
    peak: float, params: TrainParams, steps: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from peak/10 to `peak` over `warmup_epochs`, then cosine decay to peak/100.

    `steps` is the number of optimizer steps per epoch. Keras' `CosineDecay` does both: cosine
    decay after Loshchilov and Hutter (2017), "SGDR", ICLR; linear warm-up after Goyal et al.
    (2017), "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour".
    """
    warmup_steps = round(params.warmup_epochs * steps)
    total_steps = params.epochs * steps
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10 if warmup_steps else peak,
        decay_steps=max(total_steps - warmup_steps, 1),
        alpha=0.01,
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def compile_for_training(hp: Hyperparameters, params: TrainParams, train: Split) -> keras.Model:
    """Adam on `learning_rate_schedule` (peak: `train.learning_rate`, else the tuned rate) with
    label-smoothed cross-entropy (Szegedy et al. 2016, "Rethinking the Inception Architecture
    for Computer Vision", CVPR) on the network's logits, which takes one-hot labels: feed it
    `one_hot=True` batches."""
    model = build_model(hp, params.augmentation, seed=params.seed)
    peak = params.learning_rate or hp.learning_rate
    schedule = learning_rate_schedule(peak, params, steps_per_epoch(train, params.batch_size))
    compile_model(
        model,
        # Named: Keras numbers unnamed optimizers per process (adam, adam_1, ...), and the name
        # is part of the config `run_key` hashes.
        keras.optimizers.Adam(schedule, name="adam"),
        keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=params.label_smoothing
        ),
    )
    return model


def run_key(model: keras.Model, params: TrainParams, train: Split, val: Split, threads: int) -> str:
    """Names a training run by what defines its result: the compiled model's architecture, the
    recipe, the data and the thread count (results are reproducible per thread count), never
    source bytes, so an edit that builds the same model keeps the run."""
    recipe = dataclasses.asdict(params)
    del recipe["hyperparameters"]  # where the architecture came from: the model config has it
    definition = [model.to_json(), recipe, threads]
    return content_key(definition, [train.images, train.labels, val.images, val.labels])


def compressed(recipe: TrainParams, epochs: int) -> TrainParams:
    """`recipe` with its schedule compressed to `epochs`: the warm-up keeps its share of the
    schedule and the cosine still ends at peak/100, so a short run follows the same learning-rate
    curve as the full one, only faster. The peak is the trained point's own (`learning_rate`
    null), as it will be in the full run; `hyperparameters` are given to each run."""
    return dataclasses.replace(
        recipe,
        epochs=epochs,
        warmup_epochs=recipe.warmup_epochs * epochs / recipe.epochs,
        learning_rate=None,
        hyperparameters=None,
    )


@dataclass(frozen=True)
class BudgetScore:
    """A short run's validation scores: `val_nll` (nats per image, after temperature scaling
    fitted on the same images), `val_accuracy` (in [0, 1]) and `seconds` of training."""

    val_nll: float
    val_accuracy: float
    seconds: float


def score_on_budget(
    hp: Hyperparameters, recipe: TrainParams, train: Split, val: Split, seed: int
) -> BudgetScore:
    """Train `hp` with `recipe` (a `compressed` one) from scratch with `seed`, then score the
    last epoch's model on `val`: what one search trial measures. Never raises for a model that
    trains badly: such a model gets a bad score (see `lowest_scaled_nll`).

    The same model, loss, schedule, augmentation and batches as a full run (`compile_for_training`
    and `shuffled_batches`), so the searched learning rate is the peak the full run uses. The
    NLL is taken after temperature scaling because label smoothing leaves the raw probabilities
    under-confident by design (Guo et al. 2017, see `digits.calibration`).
    """
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    recipe = dataclasses.replace(recipe, seed=seed)
    model = compile_for_training(hp, recipe, train)
    start = time.perf_counter()
    model.fit(
        shuffled_batches(train, recipe.batch_size, seed, range(recipe.epochs), one_hot=True),
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch(train, recipe.batch_size),
        callbacks=[SeedByEpoch()],
        shuffle=False,  # the batches are already in each epoch's seeded order
        verbose=0,
    )
    seconds = time.perf_counter() - start
    val_logits = logits(model, val.images)
    return BudgetScore(
        val_nll=lowest_scaled_nll(val_logits, val.labels),
        val_accuracy=float(np.mean(val_logits.argmax(axis=1) == val.labels)),
        seconds=seconds,
    )


class LogLearningRate(keras.callbacks.Callback):
    """Adds the learning rate in force at the end of each epoch to the logs."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class SeedByEpoch(keras.callbacks.Callback):
    """Sets every random generator of the model (augmentation, dropout) from (seed, epoch).

    Keras does not save a `SeedGenerator`'s counter with the model, so a resumed run would
    otherwise replay the first epoch's random numbers.
    """

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for variable in self.model.non_trainable_variables:
            if variable.path.endswith("seed_generator_state"):
                seed = keras.ops.convert_to_numpy(variable)[0]
                variable.assign(np.array([seed, epoch * DRAWS_PER_EPOCH], dtype=variable.dtype))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on validation loss whose wait count and best value survive a restart
    (Keras resets them in `on_train_begin`).

    It watches loss, not accuracy: accuracy on 5,000 images moves in steps of 0.02% and can peak
    by luck early in the schedule, which would end the run before the decay.
    """

    def __init__(self, patience: int, state: dict[str, Any] | None) -> None:
        super().__init__(monitor="val_loss", mode="min", patience=patience)
        self.saved = state

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.saved:
            self.wait, self.best, self.best_epoch = (
                self.saved["wait"],
                self.saved["best"],
                self.saved["best_epoch"],
            )

    def state(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": float(self.best), "best_epoch": self.best_epoch}


class SaveResumeState(keras.callbacks.Callback):
    """After every epoch: the full model (with optimizer state), the best epoch so far, the early
    stopping state and the epoch durations (seconds), so a restart continues exactly."""

    def __init__(
        self, work_dir: Path, state: dict[str, Any], stopping: ResumableEarlyStopping
    ) -> None:
        super().__init__()
        self.work_dir = work_dir
        self.state = state
        self.stopping = stopping

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        score = float((logs or {}).get(SELECTION_METRIC, -np.inf))
        if score > self.state["best"]:
            self.state.update(best=score, best_epoch=epoch + 1)
            with atomic_path(self.work_dir / BEST) as temporary:
                self.model.save(temporary)
        self.state["epoch_seconds"].append(time.perf_counter() - self.started)
        self.state["epochs_done"] = epoch + 1
        self.state["early_stopping"] = self.stopping.state()
        self.state["stopped"] = bool(self.model.stop_training)
        # state.json is the commit point: it names the epoch's model, so a kill at any moment
        # leaves a state and a model of the same epoch.
        last = _last_model(epoch + 1)
        self.model.save(self.work_dir / last)
        previous = self.state.get("last")
        self.state["last"] = last
        write_json(self.work_dir / STATE, self.state)
        if previous:
            (self.work_dir / previous).unlink(missing_ok=True)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports. `seconds`: wall time of the epochs run, each with its
    validation pass, summed over every process that worked on the run; `images_per_second`:
    training images (validation images not counted) per second of that time."""

    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    images_per_second: float
    parameters: int

    def metrics(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_model(
    model: keras.Model,
    params: TrainParams,
    train: Split,
    val: Split,
    work_dir: Path,
    report: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model` (from `compile_for_training`) in `work_dir`, or resume the run that
    `work_dir` holds from its last finished epoch.

    `train` and `val` hold N x 28 x 28 uint8 images and N uint8 labels. On return `work_dir`
    holds the best epoch's model (`best.keras`) and the curves (`live/`); see `publish`.
    """
    state = _load_state(work_dir)
    if state:
        model = load_model(
            work_dir / state["last"], f"delete {work_dir} to train this run from the start"
        )
        report(
            f"train: resuming after epoch {state['epochs_done']} "
            f"(best {SELECTION_METRIC} {state['best']:.4f})"
        )
    else:
        work_dir.mkdir(parents=True, exist_ok=True)
        state = {"epochs_done": 0, "best": -math.inf, "best_epoch": 0, "epoch_seconds": []}
        report(f"train: {model.count_params():,} parameters, {len(train):,} images")
    first = state["epochs_done"]
    stopping = ResumableEarlyStopping(params.early_stopping_patience, state.get("early_stopping"))
    live = Live(str(work_dir / CURVES), resume=first > 0, dvcyaml=None, save_dvc_exp=False)
    live.step = first  # DVCLive resumes a run stopped after step 0 at step 0 again, not 1
    callbacks = [
        SeedByEpoch(),
        LogLearningRate(),
        stopping,
        DVCLiveCallback(live=live),
        SaveResumeState(work_dir, state, stopping),
    ]
    if first < params.epochs and not state.get("stopped"):
        model.fit(
            shuffled_batches(train, params.batch_size, params.seed, range(first, params.epochs),
                             one_hot=True),
            validation_data=ordered_batches(val, params.batch_size, one_hot=True),
            epochs=params.epochs,
            initial_epoch=first,
            steps_per_epoch=steps_per_epoch(train, params.batch_size),
            callbacks=callbacks,
            shuffle=False,  # the batches are already in each epoch's seeded order
            verbose=2,
        )  # fmt: skip
    seconds = float(sum(state["epoch_seconds"]))
    return TrainResult(
        best_val_accuracy=round(state["best"], 6),
        best_epoch=state["best_epoch"],
        epochs_run=state["epochs_done"],
        seconds=round(seconds, 1),
        images_per_second=round(len(train) * state["epochs_done"] / seconds, 1) if seconds else 0.0,
        parameters=model.count_params(),
    )


def _last_model(epochs_done: int) -> str:
    return f"epoch-{epochs_done:04d}.keras"


def _load_state(work_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((work_dir / STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if (work_dir / state.get("last", "")).is_file() else None


def best_model(work_dir: Path) -> keras.Model:
    """The best epoch's model of a finished run in `work_dir`."""
    return load_model(work_dir / BEST, f"delete {work_dir} to train this run again")


def publish(model: keras.Model, work_dir: Path, model_path: Path, curves_dir: Path) -> None:
    """Put `model` and the run's curves in place, each verified, then renamed."""
    with atomic_path(model_path, verify=load_model) as temporary:
        model.save(temporary)
    with atomic_path(curves_dir) as temporary:
        shutil.copytree(work_dir / CURVES, temporary)


def finish(work_dir: Path) -> None:
    """Remove a published run's work folder (and the checkpoints folder once it is empty): call
    it after everything the run reports is written, so a kill before leaves it resumable."""
    shutil.rmtree(work_dir)
    with contextlib.suppress(OSError):
        work_dir.parent.rmdir()


def discard_other_runs(checkpoints_dir: Path, key: str, report: Callable[[str], None]) -> None:
    """Remove unfinished runs of other definitions: they can never be resumed by this one."""
    if not checkpoints_dir.is_dir():
        return
    for other in sorted(checkpoints_dir.iterdir()):
        if other.name != key:
            report(f"train: removing unfinished run {other.name} (other params, data or model)")
            shutil.rmtree(other, ignore_errors=True)
