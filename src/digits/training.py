"""Train the tuned CNN with augmentation, a warm-up + cosine schedule and label smoothing.

The validation split only selects the checkpoint; the test set is never seen here. Work in
progress lives in `models/checkpoints/<run key>/` (last epoch, best epoch, curves): a killed run
with the same params and data resumes from its last finished epoch, and only a finished run
publishes `models/model.keras` (verified, then renamed into place) and its curves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from digits import data as data_module
from digits import model as model_module
from digits.data import Split
from digits.files import atomic_path, source_digest, write_json
from digits.model import Hyperparameters, build_model, load_model
from digits.params import TrainParams

MONITOR = "val_accuracy"


def learning_rate_schedule(
    peak: float, params: TrainParams, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from peak/10 to `peak`, then cosine decay to peak/100."""
    warmup_steps = round(params.warmup_epochs * steps_per_epoch)
    total_steps = params.epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10 if warmup_steps else peak,
        decay_steps=max(total_steps - warmup_steps, 1),
        alpha=0.01,
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def compile_for_training(hp: Hyperparameters, params: TrainParams, train_size: int) -> keras.Model:
    model = build_model(hp, params.augmentation, seed=params.seed)
    steps_per_epoch = math.ceil(train_size / params.batch_size)
    peak = params.learning_rate or hp.learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate_schedule(peak, params, steps_per_epoch)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def run_key(
    hp: Hyperparameters, params: TrainParams, train: Split, val: Split, threads: int
) -> str:
    """Identifies a training run, so a resume never mixes runs with different inputs or code."""
    code = source_digest(data_module, model_module, sys.modules[__name__])
    digest = hashlib.sha256(
        json.dumps(
            [hp.to_dict(), dataclasses.asdict(params), threads, code], sort_keys=True
        ).encode()
    )
    for array in (train.images, train.labels, val.images, val.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class LogLearningRate(keras.callbacks.Callback):
    """Adds the learning rate in force at the end of each epoch to the logs."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class SaveResumeState(keras.callbacks.Callback):
    """After every epoch: the full model (with optimizer state) and the best epoch so far."""

    def __init__(self, work_dir: Path, best: float, best_epoch: int) -> None:
        super().__init__()
        self.work_dir = work_dir
        self.best = best
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        score = float((logs or {}).get(MONITOR, -np.inf))
        if score > self.best:
            self.best, self.best_epoch = score, epoch + 1
        with atomic_path(self.work_dir / "last.keras") as temporary:
            self.model.save(temporary)
        write_json(
            self.work_dir / "state.json",
            {"epochs_done": epoch + 1, "best": self.best, "best_epoch": self.best_epoch},
        )


class EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.start)


@dataclass(frozen=True)
class TrainResult:
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    resumed_from_epoch: int
    seconds: float
    images_per_second: float
    parameters: int

    def metrics(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_model(
    hp: Hyperparameters,
    params: TrainParams,
    train: Split,
    val: Split,
    threads: int,
    model_path: Path,
    curves_dir: Path,
    checkpoints_dir: Path,
    report: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) and publish the best checkpoint to `model_path`, curves to `curves_dir`."""
    key = run_key(hp, params, train, val, threads)
    work_dir = checkpoints_dir / key
    state_file = work_dir / "state.json"
    if state_file.is_file() and (work_dir / "last.keras").is_file():
        state = json.loads(state_file.read_text())
        model = load_model(work_dir / "last.keras")
        initial_epoch, best, best_epoch = state["epochs_done"], state["best"], state["best_epoch"]
        report(f"train: resuming run {key} after epoch {initial_epoch} (best {MONITOR} {best:.4f})")
    else:
        shutil.rmtree(checkpoints_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        model = compile_for_training(hp, params, len(train))
        initial_epoch, best, best_epoch = 0, -np.inf, 0
        report(f"train: run {key}: {model.count_params():,} parameters, {len(train):,} images")

    timer = EpochTimer()
    resume_state = SaveResumeState(work_dir, best, best_epoch)
    callbacks = [
        LogLearningRate(),
        timer,
        keras.callbacks.ModelCheckpoint(
            work_dir / "best.keras",
            monitor=MONITOR,
            mode="max",
            save_best_only=True,
            initial_value_threshold=None if initial_epoch == 0 else best,
        ),
        # Stops on validation loss: accuracy on 5,000 images moves in steps of 0.02% and can
        # peak by luck early in the schedule, which would end the run before the decay.
        keras.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=params.early_stopping_patience
        ),
        DVCLiveCallback(
            live=Live(
                str(work_dir / "live"),
                resume=initial_epoch > 0,
                dvcyaml=None,
                save_dvc_exp=False,
                report=None,
            )
        ),
        resume_state,
    ]
    history = model.fit(
        train.batches(params.batch_size, shuffle_seed=params.seed, one_hot=True),
        validation_data=val.batches(params.batch_size, one_hot=True),
        epochs=params.epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the dataset reshuffles itself every epoch
        callbacks=callbacks,
        verbose=2,
    )

    with atomic_path(model_path, verify=load_model) as temporary:
        shutil.copyfile(work_dir / "best.keras", temporary)
    with atomic_path(curves_dir) as temporary:
        shutil.copytree(work_dir / "live", temporary)
    shutil.rmtree(checkpoints_dir, ignore_errors=True)

    seconds = float(sum(timer.seconds))
    return TrainResult(
        best_val_accuracy=round(resume_state.best, 6),
        best_epoch=resume_state.best_epoch,
        epochs_run=initial_epoch + len(history.epoch),
        resumed_from_epoch=initial_epoch,
        seconds=round(seconds, 1),
        images_per_second=round(len(train) * len(timer.seconds) / seconds, 1) if seconds else 0.0,
        parameters=model.count_params(),
    )
