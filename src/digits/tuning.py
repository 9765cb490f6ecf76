"""Bayesian hyperparameter search with Keras Tuner that resumes instead of restarting.

The tuner's state lives in `models/tuner/<search key>/`, a DVC output kept with `persist: true`.
The key hashes everything that defines the search except `max_trials` (space, per-trial budget,
seed, initial points, data), because Keras Tuner silently keeps the old space, seed and
`num_initial_points` when it reloads a project. Raising `max_trials` therefore runs only the new
trials; changing anything else starts a fresh search in a new key.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import json
import multiprocessing
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning

from digits import data as data_module
from digits import model as model_module
from digits import runtime
from digits.data import Split
from digits.errors import DigitsError
from digits.files import source_digest, write_json
from digits.model import Hyperparameters, build_model
from digits.params import Hyperparameter, SearchSpace, TunerParams

OBJECTIVE = "val_accuracy"


def declare_space(hp: kt.HyperParameters, space: SearchSpace) -> Hyperparameters:
    """Declare every dimension of `space` on `hp` and return the values drawn for this trial."""
    values = {}
    for name, (kind, _, _) in SearchSpace.BOUNDS.items():
        values[name] = _declare(hp, name, kind, getattr(space, name))
    return Hyperparameters(**values)


def _declare(hp: kt.HyperParameters, name: str, kind: type, dim: Hyperparameter) -> Any:
    if dim.is_choice:
        if len(dim.values) == 1:
            return hp.Fixed(name, dim.values[0])
        return hp.Choice(name, list(dim.values), ordered=kind is not bool)
    if dim.min == dim.max:
        return hp.Fixed(name, dim.min)
    if kind is int:
        return hp.Int(name, dim.min, dim.max, step=dim.step or 1, sampling=dim.sampling)
    return hp.Float(name, dim.min, dim.max, step=dim.step, sampling=dim.sampling)


def compile_for_search(hp: Hyperparameters) -> keras.Model:
    model = build_model(hp)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def search_key(params: TunerParams, train: Split, val: Split) -> str:
    """A short hash of everything that defines the search except `max_trials`: params, data and
    the code that builds and scores a trial."""
    definition = dataclasses.asdict(params)
    for name in TunerParams.EXECUTION:
        del definition[name]
    code = source_digest(data_module, model_module, sys.modules[__name__])
    digest = hashlib.sha256(json.dumps([definition, code], sort_keys=True, default=str).encode())
    for array in (train.images, train.labels, val.images, val.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TrialRecord:
    trial: int
    score: float
    best_so_far: float
    epochs: int
    seconds: float
    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class SearchResult:
    best: Hyperparameters
    trials: list[TrialRecord]
    trials_run: int
    key: str

    @property
    def best_score(self) -> float:
        return max(record.score for record in self.trials)


class ResumableBayesianOracle(kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimization whose proposals do not depend on how often the search was resumed.

    Keras Tuner draws the acquisition's random restarts from a generator it never saves, and
    reloads trials in filesystem order, so a reloaded search proposes other trials than an
    uninterrupted one. Seeding by trial number and reloading in trial order make the proposal a
    function of the seed and the trials so far.
    """

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        self._random_state = np.random.RandomState(self.seed + len(self.trials))
        return super().populate_space(trial_id)

    def reload(self) -> None:
        """A Gaussian process fitted to the same trials in another row order proposes a
        slightly different point (learning rates differed in the fourth digit)."""
        super().reload()
        self.trials = dict(sorted(self.trials.items(), key=lambda item: int(item[0])))


class DigitsTuner(kt.Tuner):
    """Bayesian optimization whose trials report their epochs and seconds, and print progress."""

    def __init__(
        self,
        *args: Any,
        report: Callable[[str], None] = print,
        planned_trials: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        self.planned_trials = planned_trials or self.oracle.max_trials
        self.trials_run = 0
        self.started = time.perf_counter()

    def run_trial(
        self,
        trial: kt.engine.trial.Trial,
        train: Split,
        val: Split,
        params: TunerParams,
        **_: Any,  # `search(verbose=...)` is forwarded here too
    ) -> dict[str, float]:
        keras.backend.clear_session()
        gc.collect()
        # Seeded by trial, so a trial trains the same whichever process or resume runs it.
        trial_seed = params.seed + int(trial.trial_id)
        keras.utils.set_random_seed(trial_seed)
        model = self.hypermodel.build(trial.hyperparameters)
        stop_early = keras.callbacks.EarlyStopping(
            monitor=OBJECTIVE, mode="max", patience=params.early_stopping_patience
        )
        start = time.perf_counter()
        history = model.fit(
            train.batches(params.batch_size, shuffle_seed=trial_seed),
            validation_data=val.batches(params.batch_size),
            epochs=params.epochs_per_trial,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=[stop_early],
            verbose=0,
        )
        return {
            OBJECTIVE: max(history.history[OBJECTIVE]),
            "epochs": len(history.epoch),
            "seconds": time.perf_counter() - start,
        }

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)
        self.trials_run += 1
        score = f"{trial.score:.4f}" if trial.score is not None else f"{trial.status}"
        if not isinstance(self.oracle, kt.Oracle):  # a distributed worker: the chief keeps count
            self.report(
                f"tune: {self.tuner_id} finished trial {trial.trial_id}: {OBJECTIVE} {score}"
            )
            return
        completed = _completed(self.oracle)
        total = self.planned_trials
        best = f"{max(t.score for t in completed):.4f}" if completed else "none yet"
        seconds_per_trial = (time.perf_counter() - self.started) / self.trials_run
        left = seconds_per_trial * max(total - len(self.oracle.trials), 0)
        self.report(
            f"tune: trial {len(self.oracle.trials)}/{total} {OBJECTIVE} {score} (best {best}), "
            f"about {_duration(left)} left"
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _completed(oracle: kt.Oracle) -> list[kt.engine.trial.Trial]:
    trials = [t for t in oracle.trials.values() if t.status == "COMPLETED" and t.score is not None]
    return sorted(trials, key=lambda t: int(t.trial_id))


def build_tuner(
    params: TunerParams,
    state_dir: Path,
    key: str,
    report: Callable[[str], None] = print,
    planned_trials: int | None = None,
) -> DigitsTuner:
    """The tuner over search `key`, reloading its state when it exists."""
    oracle = ResumableBayesianOracle(
        objective=kt.Objective(OBJECTIVE, direction="max"),
        max_trials=params.max_trials,
        num_initial_points=params.num_initial_points,
        seed=params.seed,
    )
    return DigitsTuner(
        oracle=oracle,
        hypermodel=lambda hp: compile_for_search(declare_space(hp, params.space)),
        directory=str(state_dir),
        project_name=key,
        overwrite=False,
        report=report,
        planned_trials=planned_trials,
    )


def run_search(
    params: TunerParams,
    train: Split,
    val: Split,
    state_dir: Path,
    report: Callable[[str], None] = print,
) -> SearchResult:
    """Run (or resume) the search until `params.max_trials` trials exist.

    With `params.workers`, a chief and that many worker processes run the trials (see
    `digits.distributed`); with `params.trials_per_process`, fresh processes run them in chunks,
    printing their progress rather than passing it to `report`. The result is read back from the
    same state either way.
    """
    train = train.subset(params.images_per_trial, params.seed)
    key = search_key(params, train, val)
    _drop_other_searches(state_dir, key, report)
    project = state_dir / key
    resuming = (project / "oracle.json").is_file()
    tuner = build_tuner(params, state_dir, key, report)
    done = len(_completed(tuner.oracle))
    report(
        f"tune: search {key}: {'resuming with' if resuming else 'new search,'} {done} trials done, "
        f"{max(params.max_trials - done, 0)} to run"
    )
    write_json(project / "search.json", dataclasses.asdict(params))
    if params.workers and done < params.max_trials:
        from digits.distributed import run_cluster

        tuner.save()
        run_cluster(params.workers, project, params.trial_timeout_minutes, report)
        tuner = build_tuner(params, state_dir, key, report)
    elif params.trials_per_process and done < params.max_trials:
        _search_in_fresh_processes(params, train, val, state_dir, key, len(tuner.oracle.trials))
        tuner = build_tuner(params, state_dir, key, report)
    else:
        _search(tuner, train, val, params)
    trials = _records(tuner.oracle)
    if not trials:
        raise DigitsError(
            f"no trial completed in {project}; every trial failed. Rerun with "
            "KERASTUNER_DEBUG=1 to see why, or check tuner.space in params.yaml"
        )
    best = Hyperparameters.from_dict(tuner.oracle.get_best_trials(1)[0].hyperparameters.values)
    return SearchResult(best=best, trials=trials, trials_run=len(trials) - done, key=key)


def _search(tuner: DigitsTuner, train: Split, val: Split, params: TunerParams) -> None:
    with warnings.catch_warnings():
        # The Gaussian process often fits a length scale at its bound on a few noisy trials.
        warnings.simplefilter("ignore", ConvergenceWarning)
        tuner.search(train, val, params, verbose=0)


def _search_in_fresh_processes(
    params: TunerParams, train: Split, val: Split, state_dir: Path, key: str, started: int
) -> None:
    """Run the search `params.trials_per_process` trials per process.

    TensorFlow keeps about 18 MiB per trained model alive even after `clear_session()`
    (keras-team/keras#17458), so one process running 50 trials grows by about 1 GiB. Each process
    resumes from the saved state; chunks end at multiples of `trials_per_process`, so a resumed
    search runs the same chunks as an uninterrupted one.
    """
    per_process = params.trials_per_process
    assert per_process is not None
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    while started < params.max_trials:
        until = min(params.max_trials, (started // per_process + 1) * per_process)
        chunk = dataclasses.replace(params, max_trials=until)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                now = pool.submit(
                    _search_chunk, chunk, train, val, state_dir, key, threads, params.max_trials
                ).result()
            except BrokenProcessPool as error:
                raise DigitsError(
                    f"the tuning process for trials {started + 1}-{until} died (killed, or out "
                    f"of memory); the search state in {state_dir / key} is kept: rerun "
                    "`dvc repro tune` to resume"
                ) from error
        if now == started:
            return
        started = now


def _search_chunk(
    params: TunerParams,
    train: Split,
    val: Split,
    state_dir: Path,
    key: str,
    threads: int,
    planned_trials: int,
) -> int:
    """In a fresh process: run the search up to `params.max_trials`; return the trials started."""
    runtime.configure(params.seed, threads)
    report = functools.partial(print, flush=True)
    tuner = build_tuner(params, state_dir, key, report, planned_trials)
    _search(tuner, train, val, params)
    return len(tuner.oracle.trials)


def _drop_other_searches(state_dir: Path, key: str, report: Callable[[str], None]) -> None:
    """Keep one search: trials from another definition are not comparable with this one."""
    if not state_dir.is_dir():
        return
    for other in state_dir.iterdir():
        if other.is_dir() and other.name != key:
            report(f"tune: search definition changed; removing old search {other.name}")
            shutil.rmtree(other)


def _records(oracle: kt.Oracle) -> list[TrialRecord]:
    records, best = [], -np.inf
    for trial in _completed(oracle):
        best = max(best, trial.score)
        records.append(
            TrialRecord(
                trial=int(trial.trial_id) + 1,
                score=float(trial.score),
                best_so_far=float(best),
                epochs=int(trial.metrics.get_last_value("epochs")),
                seconds=round(float(trial.metrics.get_last_value("seconds")), 2),
                hyperparameters=dict(trial.hyperparameters.values),
            )
        )
    return records


def summary_metrics(result: SearchResult) -> dict[str, Any]:
    return {
        "best_val_accuracy": round(result.best_score, 6),
        "trials_total": len(result.trials),
        "trials_run": result.trials_run,
        "search_seconds": round(sum(record.seconds for record in result.trials), 1),
        "best": result.best.to_dict(),
    }


def trial_table(result: SearchResult) -> list[dict[str, Any]]:
    """One row per trial, for the DVC plot and the CSV reviewers read."""
    return [
        {
            "trial": record.trial,
            "score": round(record.score, 6),
            "best_so_far": round(record.best_so_far, 6),
            "epochs": record.epochs,
            "seconds": record.seconds,
            **record.hyperparameters,
        }
        for record in result.trials
    ]
