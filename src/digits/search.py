"""Bayesian hyperparameter search with Keras Tuner that resumes instead of restarting.

A trial trains the `train` stage's own recipe with its schedule compressed into the trial's
budget (`digits.training.score_on_budget`) and scores the validation NLL; points above
`tuner.max_mflops_per_image` are never proposed. After the search, the best trials are re-scored
with other seeds, and `digits.selection` picks the trial that training gets.

A search lives in `<state dir>/<key>/`. The key hashes what defines a trial: the space, the
budget, the FLOPs cap, the recipe, the seed, `num_initial_points`, the data, and the architecture
`build_model` makes, but not `max_trials` and not source bytes. So raising `max_trials` runs only
the new trials, an edit that builds the same model keeps the trials, and anything that changes a
trial starts a fresh search in a new folder (Keras Tuner itself would keep the old space and seed
on reload). Earlier searches are kept, up to `KEPT_SEARCHES`.

`Search.for_params` is the one set-up every process uses: the stage, a fresh process running a
chunk of trials, and each chief or worker of a distributed search (see `digits.processes`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras_tuner as kt
from sklearn.exceptions import ConvergenceWarning

from digits.data import Split
from digits.errors import DigitsError
from digits.files import content_key, write_json
from digits.hyperparameters import Hyperparameters
from digits.model import build_model, flops_per_image
from digits.oracle import CappedRandomOracle, ResumableBayesianOracle, is_worker, read_trials
from digits.params import SearchDimension, SearchSpace, TrainParams, TunerParams
from digits.selection import Candidate, Decision, decide, pooled_sd
from digits.training import compressed, score_on_budget

KEPT_SEARCHES = 3
# What a trial scores, lower being better: validation NLL after temperature scaling. It uses
# every image's probability, where accuracy on 5,000 images moves in steps of 0.02 points and
# counts only the errors (benchmarks/results/proxy_noise_fidelity.json compares the two).
OBJECTIVE = "val_nll"
# Trial fields Keras Tuner records besides the objective.
TRIAL_METRICS = ("val_accuracy", "mflops", "seconds")


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


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its 1-based number, score (`OBJECTIVE`, nats per image), the best
    (lowest) score up to it, validation accuracy (in [0, 1]), MFLOPs per image, training seconds
    and its point of the space."""

    trial: int
    score: float
    best_so_far: float
    val_accuracy: float
    mflops: float
    seconds: float
    hyperparameters: dict[str, Any]

    def candidate(self) -> Candidate:
        return Candidate(self.trial, self.score, round(self.mflops * 1e6))


@dataclass(frozen=True)
class Search:
    """One search: its params, the recipe every trial trains (`train`'s, compressed to the
    trial budget), the trial data (N x 28 x 28 uint8 images, N uint8 labels), and where its
    state lives."""

    params: TunerParams
    recipe: TrainParams
    train: Split  # the stratified subset each trial trains on
    val: Split
    state_dir: Path
    key: str

    @classmethod
    def for_params(
        cls,
        params: TunerParams,
        recipe: TrainParams,
        train: Split,
        val: Split,
        state_dir: Path,
        threads: int,
    ) -> Search:
        """Check the space with Keras Tuner, compress `recipe` (the train section) to the trial
        budget, pick the trial data and compute the key.

        The key includes the thread count (TensorFlow's results differ by it), the recipe (but
        not train's seed, length, early stopping, learning rate or architecture, which a trial
        sets itself) and the Keras config of the model built at the space's default point, so
        an edit to `build_model` that changes only other points of the space keeps the search:
        start a fresh one with another `tuner.seed` then. Raises `DigitsError` when Keras Tuner
        refuses the space, before any state is touched.
        """
        reference = _reference_point(params.space)
        trial_train = train.subset(params.images_per_trial, params.seed)
        trial_recipe = compressed(recipe, params.epochs_per_trial)
        definition = dataclasses.asdict(params)
        for name in TunerParams.EXECUTION:
            del definition[name]
        shared = dataclasses.asdict(trial_recipe)
        for name in ("seed", "early_stopping_patience", "learning_rate", "hyperparameters"):
            del shared[name]
        architecture = build_model(reference).to_json()
        key = content_key(
            [definition, shared, architecture, threads],
            [trial_train.images, trial_train.labels, val.images, val.labels],
        )
        return cls(params, trial_recipe, trial_train, val, state_dir, key)

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
        trials (default: all planned). `algorithm="random"` is random search under the same
        FLOPs cap, the baseline `benchmarks/search_vs_random.py` compares with."""
        objective = kt.Objective(OBJECTIVE, direction="min")
        max_trials, seed = until or self.planned_trials, self.params.seed
        if algorithm not in ("bayesian", "random"):
            raise ValueError(f"algorithm must be 'bayesian' or 'random', got {algorithm!r}")
        if algorithm == "random":
            oracle = CappedRandomOracle(
                self.within_cap, objective=objective, max_trials=max_trials, seed=seed
            )
        else:
            oracle = ResumableBayesianOracle(
                self.within_cap,
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

    def within_cap(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """`values` (a point as Keras Tuner holds it) if its model fits
        `tuner.max_mflops_per_image`; else the same point with the largest `base_filters` of
        the space that fits, or None when none does. FLOPs grow with the square of the filter
        count, so lowering it is the smallest change that brings a point under the cap."""
        cap = self.params.max_mflops_per_image
        if cap is None or mflops(_point(values)) <= cap:
            return values
        lower = [f for f in dimension_values(self.params.space["base_filters"])
                 if f < values["base_filters"]]  # fmt: skip
        for filters in sorted(lower, reverse=True):
            smaller = {**values, "base_filters": filters}
            if mflops(_point(smaller)) <= cap:
                return smaller
        return None

    def completed(self) -> list[TrialRecord]:
        """The finished trials, in trial order, read from the saved state: the first
        `planned_trials` of them, so a lowered `max_trials` reports what a search of that size
        found, whatever ran before."""
        records, best = [], float("inf")
        for trial in read_trials(self.project)[: self.planned_trials]:
            best = min(best, trial.score)
            point = Hyperparameters.from_dict(
                as_declared(trial.hyperparameters.values),
                f"{self.project}, trial {trial.trial_id}",
                f"The search state is damaged: delete {self.project} and rerun "
                "`dvc repro tune` to run this search again",
            )
            measured = {name: trial.metrics.get_last_value(name) for name in TRIAL_METRICS}
            records.append(
                TrialRecord(
                    trial=int(trial.trial_id) + 1,
                    score=float(trial.score),
                    best_so_far=float(best),
                    val_accuracy=float(measured["val_accuracy"]),
                    mflops=round(float(measured["mflops"]), 4),
                    seconds=round(float(measured["seconds"]), 2),
                    hyperparameters=dataclasses.asdict(point),
                )
            )
        return records


def _point(values: dict[str, Any]) -> Hyperparameters:
    return Hyperparameters.from_dict(as_declared(values), "a point Keras Tuner proposed")


@functools.lru_cache(maxsize=4096)
def mflops(point: Hyperparameters) -> float:
    """Millions of FLOPs per image of the network `point` builds (`flops_per_image`)."""
    return flops_per_image(build_model(point)) / 1e6


def dimension_values(dimension: SearchDimension) -> list[Any]:
    """Every value a discrete dimension takes (a choice, or an int range with its step)."""
    if dimension.is_choice:
        return list(dimension.values)
    if dimension.kind is not int:
        raise DigitsError(f"tuner.space.{dimension.name}: expected a discrete dimension")
    step = dimension.step or 1
    return list(range(dimension.min, dimension.max + 1, step))


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
        """Train the trial's point on the search's recipe, seeded by trial number so that a
        trial trains the same whichever process or resume runs it."""
        search = self.digits_search
        point = declare_space(trial.hyperparameters, search.params.space)
        result = trial_scores(search, point, search.params.seed + int(trial.trial_id))
        self.scores[trial.trial_id] = result[OBJECTIVE]
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
        best = f"{min(scores):.4f}" if scores else "none yet"
        seconds_per_trial = (time.perf_counter() - self.started) / self.trials_run
        left = seconds_per_trial * max(total - len(self.oracle.trials), 0)
        self.report(
            f"tune: trial {len(self.oracle.trials)}/{total} {OBJECTIVE} {score} "
            f"(best {best}), about {_duration(left)} left"
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def trial_scores(search: Search, point: Hyperparameters, seed: int) -> dict[str, float]:
    """One trial: `point` trained on the search's recipe and data with `seed`; its `OBJECTIVE`
    and `TRIAL_METRICS` as Keras Tuner records them."""
    result = score_on_budget(point, search.recipe, search.train, search.val, seed)
    return {
        OBJECTIVE: result.val_nll,
        "val_accuracy": result.val_accuracy,
        "mflops": mflops(point),
        "seconds": result.seconds,
    }


# Seeds for re-scoring lie far from the trial seeds (seed + trial number).
RESCORE_SEED_OFFSET = 1_000_000


def rescore(
    search: Search, records: list[TrialRecord], report: Callable[[str], None]
) -> dict[int, list[float]]:
    """The `tuner.rescored_trials` best trials' scores under `tuner.noise_seeds` other seeds,
    after each one's own, by trial number: how much the objective moves with the seed alone,
    hence the standard error the one-standard-error rule uses. Each trial's scores are kept in
    the search folder as they come, so a rerun or a resumed run trains only what is missing."""
    saved = search.project / "rescores.json"
    seeds = [search.params.seed + RESCORE_SEED_OFFSET + i for i in range(search.params.noise_seeds)]
    known = json.loads(saved.read_text()) if saved.is_file() else {}
    if known.get("seeds") != seeds:
        known = {"seeds": seeds, "scores": {}}
    ranked = sorted(records, key=lambda record: (record.score, record.trial))
    groups = {}
    for record in ranked[: search.params.rescored_trials]:
        if str(record.trial) not in known["scores"]:
            point = Hyperparameters.from_dict(record.hyperparameters)
            scores = [record.score]
            for seed in seeds:
                scores.append(trial_scores(search, point, seed)[OBJECTIVE])
                report(f"tune: trial {record.trial} re-scored with seed {seed}: {scores[-1]:.4f}")
            known["scores"][str(record.trial)] = scores
            write_json(saved, known)
        groups[record.trial] = known["scores"][str(record.trial)]
    return groups


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


def choose(records: list[TrialRecord], rescores: dict[int, list[float]], rule: str) -> Decision:
    """The search's decision under `rule` (`tuner.selection`), the standard error being the
    pooled seed sd of the re-scored trials. Raises DigitsError when no trial completed."""
    candidates = [record.candidate() for record in records]
    return decide(candidates, pooled_sd(list(rescores.values())), rule)


def summary_metrics(
    records: list[TrialRecord], rescores: dict[int, list[float]], decision: Decision
) -> dict[str, Any]:
    """What `metrics/tune.json` holds: a function of the trials and their re-scores alone (both
    kept in the search folder), so a rerun with nothing to do, or a resumed search, writes the
    same bytes as an uninterrupted one.

    `chosen_*` describe the trial training gets; `best_*` the best-scoring one; `band_limit` is
    the highest score the rule accepted. `search_seconds` sums the trials' training seconds,
    re-scoring excluded, not the search's wall time.
    """
    by_trial = {record.trial: record for record in records}
    chosen, best = by_trial[decision.chosen.trial], by_trial[decision.best.trial]
    se = decision.standard_error
    return {
        "chosen_val_nll": round(chosen.score, 6),
        "chosen_val_accuracy": round(chosen.val_accuracy, 6),
        "chosen_mflops": chosen.mflops,
        "chosen_trial": chosen.trial,
        "best_trial": best.trial,
        "best_val_nll": round(best.score, 6),
        "best_mflops": best.mflops,
        "standard_error": round(se, 6) if se is not None else None,
        "band_limit": round(decision.band_limit, 6),
        "rescored": {
            str(trial): [round(s, 6) for s in scores] for trial, scores in rescores.items()
        },
        "trials": len(records),
        "search_seconds": round(sum(record.seconds for record in records), 1),
        "chosen": chosen.hyperparameters,
    }


def trial_table(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """One row per trial, for the DVC plot and the CSV reviewers read."""
    return [
        {
            "trial": record.trial,
            "score": round(record.score, 6),
            "best_so_far": round(record.best_so_far, 6),
            "val_accuracy": round(record.val_accuracy, 6),
            "mflops": record.mflops,
            "seconds": record.seconds,
            **record.hyperparameters,
        }
        for record in records
    ]
