"""Bayesian hyperparameter search with Keras Tuner that resumes instead of restarting.

The tuner's state lives in `models/tuner/<search key>/`, a DVC output kept with `persist: true`.
The key hashes everything that defines the search except `max_trials` (space, per-trial budget,
seed, initial points, data), because Keras Tuner silently keeps the old space, seed and
`num_initial_points` when it reloads a project. Raising `max_trials` therefore runs only the new
trials; changing anything else starts a fresh search in a new key.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from digits import model as model_module
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
    code = source_digest(model_module, sys.modules[__name__])
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


class DigitsTuner(kt.BayesianOptimization):
    """Bayesian optimization whose trials report their epochs and seconds, and print progress."""

    def __init__(self, *args: Any, report: Callable[[str], None] = print, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
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
        keras.backend.clear_session()  # keeps memory flat from trial to trial
        gc.collect()
        model = self.hypermodel.build(trial.hyperparameters)
        stop_early = keras.callbacks.EarlyStopping(
            monitor=OBJECTIVE, mode="max", patience=params.early_stopping_patience
        )
        start = time.perf_counter()
        history = model.fit(
            train.images,
            train.labels,
            validation_data=(val.images, val.labels),
            epochs=params.epochs_per_trial,
            batch_size=params.batch_size,
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
        total = self.oracle.max_trials
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
    params: TunerParams, state_dir: Path, key: str, report: Callable[[str], None] = print
) -> DigitsTuner:
    """The tuner over search `key`, reloading its state when it exists."""
    return DigitsTuner(
        hypermodel=lambda hp: compile_for_search(declare_space(hp, params.space)),
        objective=kt.Objective(OBJECTIVE, direction="max"),
        max_trials=params.max_trials,
        num_initial_points=params.num_initial_points,
        seed=params.seed,
        directory=str(state_dir),
        project_name=key,
        overwrite=False,
        report=report,
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
    `digits.distributed`); the result is read back from the same state either way.
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
    else:
        with warnings.catch_warnings():
            # The Gaussian process often fits a length scale at its bound on a few noisy trials.
            warnings.simplefilter("ignore", ConvergenceWarning)
            tuner.search(train, val, params, verbose=0)
    trials = _records(tuner.oracle)
    if not trials:
        raise DigitsError(
            f"no trial completed in {project}; every trial failed. Rerun with "
            "KERASTUNER_DEBUG=1 to see why, or check tuner.space in params.yaml"
        )
    best = Hyperparameters.from_dict(tuner.oracle.get_best_trials(1)[0].hyperparameters.values)
    return SearchResult(best=best, trials=trials, trials_run=len(trials) - done, key=key)


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
