"""Bayesian hyperparameter search with Keras Tuner that resumes instead of restarting.

A search lives in `<state dir>/<key>/`. The key hashes what defines a trial: the space, the
per-trial budget, the seed, `num_initial_points`, the data, and the architecture `build_model`
makes, but not `max_trials` and not source bytes. So raising `max_trials` runs only the new
trials, an edit that builds the same model keeps the trials, and anything that changes a trial
starts a fresh search in a new folder (Keras Tuner itself would keep the old space and seed on
reload). Earlier searches are kept, up to `KEPT_SEARCHES`.

`Search.for_params` is the one set-up every process uses: the stage, a fresh process running a
chunk of trials, and each chief or worker of a distributed search (see `digits.processes`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import keras_tuner as kt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from digits.batches import ordered_batches, shuffled_batches, steps_per_epoch
from digits.data import Split
from digits.errors import DigitsError
from digits.files import content_key, write_json
from digits.hyperparameters import Hyperparameters
from digits.model import SELECTION_METRIC, build_model, compile_model
from digits.oracle import ResumableBayesianOracle, is_worker, read_trials
from digits.params import SearchDimension, SearchSpace, TunerParams

KEPT_SEARCHES = 3


def declare_space(tuner_hp: kt.HyperParameters, space: SearchSpace) -> Hyperparameters:
    """Declare every dimension of `space` on Keras Tuner's `tuner_hp` and return the values
    drawn for this trial as the project's `Hyperparameters`."""
    drawn = {dim.name: _declare(tuner_hp, dim) for dim in space.dimensions}
    return Hyperparameters.from_dict(
        as_declared(drawn),
        "the values Keras Tuner drew for a trial",
        "Check `tuner.space` in params.yaml",
    )


def as_declared(values: dict[str, Any]) -> dict[str, Any]:
    """Keras Tuner's values with each dimension's declared Python type.

    Keras Tuner's `Choice` casts boolean values to int (it tests `isinstance(values[0], int)`,
    which True passes), so a searched `batch_norm` comes back as 0 or 1 in every mode, and the
    trial files and distributed workers hold it that way too (keras-tuner 1.4.8). Only that
    cast is undone; any other value, and any unknown name, is left as it is for
    `Hyperparameters.from_dict` to convert or reject by name.
    """
    booleans = {dim.name for dim in Hyperparameters.dimensions() if dim.kind is bool}

    def declared(name: str, value: Any) -> Any:
        is_cast = name in booleans and type(value) is int and value in (0, 1)
        return bool(value) if is_cast else value

    return {name: declared(name, value) for name, value in values.items()}


def _declare(tuner_hp: kt.HyperParameters, dim: SearchDimension) -> Any:
    if dim.is_choice:
        if len(dim.values) == 1:
            return tuner_hp.Fixed(dim.name, dim.values[0])
        return tuner_hp.Choice(dim.name, list(dim.values), ordered=dim.kind is not bool)
    if dim.min == dim.max:
        return tuner_hp.Fixed(dim.name, dim.min)
    number = tuner_hp.Int if dim.kind is int else tuner_hp.Float
    return number(dim.name, dim.min, dim.max, step=dim.step, sampling=dim.sampling)


def compile_for_search(hyperparameters: Hyperparameters) -> keras.Model:
    model = build_model(hyperparameters)
    optimizer = keras.optimizers.Adam(hyperparameters.learning_rate)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    compile_model(model, optimizer, loss)
    return model


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its 1-based number, proxy score (`SELECTION_METRIC`, in [0, 1]), the
    best score up to it, epochs run, and training seconds (validation passes included)."""

    trial: int
    score: float
    best_so_far: float
    epochs: int
    seconds: float
    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class Search:
    """One search: its params, the trial data (N x 28 x 28 uint8 images, N uint8 labels), and
    where its state lives."""

    params: TunerParams
    train: Split  # the stratified subset each trial trains on
    val: Split
    state_dir: Path
    key: str

    @classmethod
    def for_params(
        cls, params: TunerParams, train: Split, val: Split, state_dir: Path, threads: int
    ) -> Search:
        """Check the space with Keras Tuner, pick the trial data and compute the key.

        The key includes the thread count (TensorFlow's results differ by it) and the Keras
        config of the model built at the space's default point, so an edit to `build_model`
        that changes only other points of the space keeps the search: start a fresh one with
        another `tuner.seed` then. Raises `DigitsError` when Keras Tuner refuses the space,
        before any state is touched.
        """
        reference = _reference_point(params.space)
        trial_train = train.subset(params.images_per_trial, params.seed)
        definition = dataclasses.asdict(params)
        for name in TunerParams.EXECUTION:
            del definition[name]
        architecture = build_model(reference).to_json()
        key = content_key(
            [definition, architecture, threads],
            [trial_train.images, trial_train.labels, val.images, val.labels],
        )
        return cls(params, trial_train, val, state_dir, key)

    @property
    def project(self) -> Path:
        return self.state_dir / self.key

    @property
    def planned_trials(self) -> int:
        """`max_trials`, capped at the number of points in a finite space."""
        return int(min(self.params.max_trials, self.params.space.size))

    def tuner(
        self,
        report: Callable[[str], None] = print,
        until: int | None = None,
        algorithm: Literal["bayesian", "random"] = "bayesian",
    ) -> DigitsTuner:
        """The tuner over this search, reloading its state when it exists; runs to `until`
        trials (default: all planned). `algorithm="random"` is Keras Tuner's random search, the
        baseline `benchmarks/search_vs_random.py` compares with: with the same seed its trials
        are the Bayesian search's first `num_initial_points` and then more random draws."""
        objective = kt.Objective(SELECTION_METRIC, direction="max")
        max_trials, seed = until or self.planned_trials, self.params.seed
        if algorithm not in ("bayesian", "random"):
            raise ValueError(f"algorithm must be 'bayesian' or 'random', got {algorithm!r}")
        if algorithm == "random":
            oracle = kt.oracles.RandomSearchOracle(
                objective=objective, max_trials=max_trials, seed=seed
            )
        else:
            oracle = ResumableBayesianOracle(
                objective=objective,
                max_trials=max_trials,
                num_initial_points=self.params.num_initial_points,
                seed=seed,
            )
        return DigitsTuner(
            self,
            report,
            oracle=oracle,
            # Keras Tuner learns the space from this; `run_trial` builds and trains the model.
            hypermodel=lambda tuner_hp: declare_space(tuner_hp, self.params.space),
            directory=str(self.state_dir),
            project_name=self.key,
            overwrite=False,
        )

    def completed(self) -> list[TrialRecord]:
        """The finished trials, in trial order, read from the saved state: the first
        `planned_trials` of them, so a lowered `max_trials` reports what a search of that size
        found, whatever ran before."""
        records, best = [], -float("inf")
        for trial in read_trials(self.project)[: self.planned_trials]:
            best = max(best, trial.score)
            values = as_declared(trial.hyperparameters.values)
            point = Hyperparameters.from_dict(
                values,
                f"{self.project}, trial {trial.trial_id}",
                f"The search state is damaged: delete {self.project} and rerun "
                "`dvc repro tune` to run this search again",
            )
            records.append(
                TrialRecord(
                    trial=int(trial.trial_id) + 1,
                    score=float(trial.score),
                    best_so_far=float(best),
                    epochs=int(trial.metrics.get_last_value("epochs")),
                    seconds=round(float(trial.metrics.get_last_value("seconds")), 2),
                    hyperparameters=dataclasses.asdict(point),
                )
            )
        return records


def _reference_point(space: SearchSpace) -> Hyperparameters:
    """Declare the space on a scratch `HyperParameters`: Keras Tuner's own checks run here, and
    what it refuses becomes one error. Returns the space's default point."""
    try:
        return declare_space(kt.HyperParameters(), space)
    except (ValueError, TypeError) as error:
        raise DigitsError(
            f"params.yaml: tuner.space: Keras Tuner refuses this space ({error}); fix the "
            "dimension it names"
        ) from None


class DigitsTuner(kt.Tuner):
    """Runs one trial per call, seeded by trial number, and prints progress."""

    def __init__(self, search: Search, report: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.digits_search = search
        self.report = report
        self.trials_run = 0
        self.started = time.perf_counter()
        self.scores: dict[str, float] = {}  # by trial id: a worker's trials carry no score

    def run_trial(self, trial: kt.engine.trial.Trial, **_: Any) -> dict[str, float]:
        """Train one proxy model, seeded by trial number so that a trial trains the same
        whichever process or resume runs it."""
        search = self.digits_search
        hyperparameters = declare_space(trial.hyperparameters, search.params.space)
        result = proxy_score(search, hyperparameters, search.params.seed + int(trial.trial_id))
        self.scores[trial.trial_id] = result[SELECTION_METRIC]
        return result

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)
        self.trials_run += 1
        # The chief scores a worker's trial; the worker knows the objective it sent.
        value = trial.score if trial.score is not None else self.scores.get(trial.trial_id)
        score = f"{value:.4f}" if value is not None else f"{trial.status}"
        if is_worker():
            self.report(f"tune: {self.tuner_id} finished trial {trial.trial_id}: score {score}")
            return
        total = self.digits_search.planned_trials
        scores = [t.score for t in self.oracle.trials.values() if t.score is not None]
        best = f"{max(scores):.4f}" if scores else "none yet"
        seconds_per_trial = (time.perf_counter() - self.started) / self.trials_run
        left = seconds_per_trial * max(total - len(self.oracle.trials), 0)
        self.report(
            f"tune: trial {len(self.oracle.trials)}/{total} {SELECTION_METRIC} {score} "
            f"(best {best}), about {_duration(left)} left"
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def proxy_score(search: Search, hyperparameters: Hyperparameters, seed: int) -> dict[str, float]:
    """The search objective: best `SELECTION_METRIC` of a model trained `epochs_per_trial`
    epochs on the trial data with `seed`; also the epochs run (early stopping may cut them) and
    the wall-clock seconds of `fit`, validation passes included."""
    params = search.params
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    model = compile_for_search(hyperparameters)
    stop_early = keras.callbacks.EarlyStopping(
        monitor=SELECTION_METRIC, mode="max", patience=params.early_stopping_patience
    )
    start = time.perf_counter()
    history = model.fit(
        shuffled_batches(search.train, params.batch_size, seed, range(params.epochs_per_trial)),
        validation_data=ordered_batches(search.val, params.batch_size),
        epochs=params.epochs_per_trial,
        steps_per_epoch=steps_per_epoch(search.train, params.batch_size),
        callbacks=[stop_early],
        shuffle=False,  # the batches are already in each epoch's seeded order
        verbose=0,
    )
    return {
        SELECTION_METRIC: max(history.history[SELECTION_METRIC]),
        "epochs": len(history.epoch),
        "seconds": time.perf_counter() - start,
    }


# Seeds for re-scoring lie far from the trial seeds (seed + trial number).
RESCORE_SEED_OFFSET = 1_000_000


def seed_noise(search: Search, best: TrialRecord, report: Callable[[str], None]) -> list[float]:
    """The best trial's score under `tuner.noise_seeds` other seeds, after its own: how much
    the objective moves with the seed alone, hence which differences between trials mean
    something. Kept in the search folder, so a rerun trains nothing and writes the same."""
    saved = search.project / "seed_noise.json"
    wanted = {"trial": best.trial, "seeds": search.params.noise_seeds}
    if saved.is_file() and json.loads(saved.read_text()).get("of") == wanted:
        return json.loads(saved.read_text())["scores"]
    hyperparameters = Hyperparameters.from_dict(best.hyperparameters)
    scores = [best.score]
    for index in range(search.params.noise_seeds):
        seed = search.params.seed + RESCORE_SEED_OFFSET + index
        scores.append(proxy_score(search, hyperparameters, seed)[SELECTION_METRIC])
        report(f"tune: best trial {best.trial} re-scored with seed {seed}: {scores[-1]:.4f}")
    write_json(saved, {"of": wanted, "scores": scores})
    return scores


def run_trials(tuner: DigitsTuner) -> None:
    """Run the tuner's remaining trials in this process (any role).

    Raises `DigitsError` when Keras Tuner gives up after consecutive failed trials.
    """
    with warnings.catch_warnings():
        # The Gaussian process often fits a length scale at its bound on a few noisy trials.
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            tuner.search(verbose=0)
        except RuntimeError as error:
            if "consecutive failures" not in str(error):
                raise
            raise DigitsError(
                f"tuning stopped: {str(error).splitlines()[0]} Rerun with KERASTUNER_DEBUG=1 "
                "to see why, or check tuner.space in params.yaml"
            ) from None


def mark_in_use(search: Search) -> None:
    """Touch the folder of a search that has saved state, so that `prune_searches` counts it
    among the most recently used and keeps it."""
    if (search.project / "oracle.json").is_file():
        os.utime(search.project)


def describe(search: Search, report: Callable[[str], None]) -> int:
    """Say what the search will do; returns the number of trials already done."""
    done = len(search.completed())
    planned = search.planned_trials
    if planned < search.params.max_trials:
        report(
            f"tune: the search space has only {planned} point(s); running {planned} trial(s), "
            f"not tuner.max_trials={search.params.max_trials}"
        )
    resuming = (search.project / "oracle.json").is_file()
    report(
        f"tune: search {search.key}: {'resuming with' if resuming else 'new search,'} {done} "
        f"trials done, {max(planned - done, 0)} to run"
    )
    return done


def prune_searches(search: Search, report: Callable[[str], None]) -> None:
    """Keep this search and the `KEPT_SEARCHES - 1` most recently used others; remove the rest."""
    others = [p for p in search.state_dir.iterdir() if p.is_dir() and p.name != search.key]
    others.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    for old in others[KEPT_SEARCHES - 1 :]:
        report(f"tune: removing search {old.name}, the oldest of {len(others) + 1} kept")
        shutil.rmtree(old)


def best_trial(records: list[TrialRecord]) -> TrialRecord:
    """The best trial (the earliest wins a tie, as in Keras Tuner).

    Raises `DigitsError` when no trial completed.
    """
    if not records:
        raise DigitsError(
            "no trial completed; every trial failed. Rerun with KERASTUNER_DEBUG=1 to see why, "
            "or check tuner.space in params.yaml"
        )
    return max(records, key=lambda record: (record.score, -record.trial))


def summary_metrics(records: list[TrialRecord], noise: list[float]) -> dict[str, Any]:
    """What `metrics/tune.json` holds: a function of the trials alone, so a rerun with nothing
    to do, or a resumed search, writes the same bytes as an uninterrupted one.

    `seed_sd` is the sample standard deviation of the best configuration's score over seeds
    (`seed_noise`); null with fewer than two scores. `search_seconds` sums the trials' training
    seconds (validation included), not the search's wall time. Raises DigitsError when no trial
    completed.
    """
    best = best_trial(records)
    return {
        "best_val_accuracy": round(best.score, 6),
        "seed_sd": round(float(np.std(noise, ddof=1)), 6) if len(noise) > 1 else None,
        "trials": len(records),
        "search_seconds": round(sum(record.seconds for record in records), 1),
        "best_trial": best.trial,
        "best": best.hyperparameters,
    }


def trial_table(records: list[TrialRecord]) -> list[dict[str, Any]]:
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
        for record in records
    ]
