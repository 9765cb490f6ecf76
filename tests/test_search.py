"""The search resumes: more trials run only the new ones; a changed definition starts fresh."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import keras_tuner as kt
import pytest

from digits import runtime
from digits.data import Split
from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from digits.model import build_model, flops_per_image
from digits.oracle import ResumableBayesianOracle, read_trials
from digits.params import SearchDimension, SearchSpace, TrainParams, TunerParams
from digits.processes import run_in_chunks
from digits.search import (
    DigitsTuner,
    Search,
    as_declared,
    choose,
    declare_space,
    describe,
    mark_in_use,
    mflops,
    prune_searches,
    rescore,
    run_trials,
    summary_metrics,
)
from tests.helpers import TINY_RECIPE as RECIPE
from tests.helpers import TINY_TUNER as PARAMS
from tests.helpers import assert_says


def search(params: TunerParams, splits: dict[str, Split], state: Path, lines: list[str]) -> Search:
    """What the tune stage does in one process: set up, mark in use, report, run, prune."""
    runtime.configure(seed=params.seed, threads=2)
    prepared = Search.for_params(params, RECIPE, splits["train"], splits["val"], state, threads=2)
    mark_in_use(prepared)
    describe(prepared, lines.append)
    if params.trials_per_process:
        run_in_chunks(prepared, threads=2)
    else:
        run_trials(prepared.tuner(lines.append))
    prune_searches(prepared, lines.append)
    return prepared


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_raising_max_trials_runs_only_the_new_trials(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    lines: list[str] = []
    first = search(PARAMS, tiny_splits, tmp_path, lines)
    before = first.completed()
    assert len(before) == 2

    lines.clear()
    second = search(dataclasses.replace(PARAMS, max_trials=3), tiny_splits, tmp_path, lines)
    assert second.key == first.key
    records = second.completed()
    assert [r.trial for r in records] == [1, 2, 3]
    assert records[:2] == before
    assert lines[0] == f"tune: search {first.key}: resuming with 2 trials done, 1 to run"
    assert lines[1].startswith("tune: trial 3/3 val_nll ")

    lowered = search(PARAMS, tiny_splits, tmp_path, [])
    assert lowered.completed() == before, "a lowered max_trials reports what it would have found"


@pytest.mark.slow
def test_a_rerun_with_nothing_to_do_changes_no_byte(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    def metrics(done: Search, lines: list[str]) -> dict:
        records = done.completed()
        rescores = rescore(done, records, lines.append)
        return summary_metrics(records, rescores, choose(records, rescores, "one_se"))

    done = search(PARAMS, tiny_splits, tmp_path, [])
    first: list[str] = []
    before = metrics(done, first)
    assert len(first) == PARAMS.noise_seeds and before["standard_error"] > 0
    state = tree_digest(tmp_path)

    lines: list[str] = []
    again = search(PARAMS, tiny_splits, tmp_path, lines)
    assert metrics(again, lines) == before
    assert lines == ["tune: search " + again.key + ": resuming with 2 trials done, 0 to run"]
    assert tree_digest(tmp_path) == state


@pytest.mark.slow
def test_a_changed_space_starts_a_fresh_search_and_keeps_the_old_ones(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    first = search(PARAMS, tiny_splits, tmp_path, [])
    keys = [first.key]
    for filters in (4, 8, 16):
        narrower = _with(
            PARAMS.space, base_filters=SearchDimension("base_filters", values=(filters,))
        )
        lines: list[str] = []
        fresh = search(dataclasses.replace(PARAMS, space=narrower), tiny_splits, tmp_path, lines)
        assert fresh.key not in keys
        assert lines[0] == f"tune: search {fresh.key}: new search, 0 trials done, 2 to run"
        assert all(r.hyperparameters["base_filters"] == filters for r in fresh.completed())
        keys.append(fresh.key)
    assert lines[-1] == f"tune: removing search {first.key}, the oldest of 4 kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keys[1:])


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 4}, {"num_initial_points": 2}, {"epochs_per_trial": 2},
        {"max_mflops_per_image": 1.0},
    ],
)  # fmt: skip
def test_any_change_but_how_the_search_runs_changes_the_key(
    tmp_path: Path, tiny_splits: dict[str, Split], change: dict
) -> None:
    def key(params: TunerParams) -> str:
        return Search.for_params(
            params, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path, threads=2
        ).key

    assert key(PARAMS) != key(dataclasses.replace(PARAMS, **change))
    execution = {
        "max_trials": 50, "workers": 2, "trials_per_process": 5, "noise_seeds": 3,
        "rescored_trials": 3, "selection": "one_se",
    }  # fmt: skip
    assert key(PARAMS) == key(dataclasses.replace(PARAMS, **execution))


def test_the_trial_recipe_is_part_of_the_key_but_not_what_a_trial_sets_itself(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    def key(recipe: TrainParams) -> str:
        return Search.for_params(
            PARAMS, recipe, tiny_splits["train"], tiny_splits["val"], tmp_path, threads=2
        ).key

    smoothing = dataclasses.replace(RECIPE, label_smoothing=0.0)
    assert key(RECIPE) != key(smoothing)
    own = {"seed": 1, "learning_rate": 0.5, "early_stopping_patience": 1}
    assert key(RECIPE) == key(dataclasses.replace(RECIPE, **own))


def test_a_space_with_one_point_runs_it_once_with_a_note(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    single = SearchSpace(
        tuple(
            SearchDimension(d.name, values=(d.values[0],)) if d.is_choice
            else SearchDimension(d.name, min=d.min, max=d.min)
            for d in PARAMS.space.dimensions
        )
    )  # fmt: skip
    lines: list[str] = []
    one = search(
        dataclasses.replace(PARAMS, space=single, max_trials=5), tiny_splits, tmp_path, lines
    )
    assert lines[0] == (
        "tune: the search space has only 1 point(s); running 1 trial(s), not tuner.max_trials=5"
    )
    assert [r.trial for r in one.completed()] == [1]


def test_a_space_keras_tuner_refuses_is_one_error_and_touches_no_search(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    kept = search(PARAMS, tiny_splits, tmp_path, [])
    before = tree_digest(tmp_path)
    # Built directly, past params validation, which refuses this too (see test_params.py).
    refused = _with(
        PARAMS.space,
        dense_units=SearchDimension("dense_units", min=8, max=64, step=1, sampling="log"),
    )
    with pytest.raises(DigitsError) as error:
        Search.for_params(
            dataclasses.replace(PARAMS, space=refused), RECIPE, tiny_splits["train"],
            tiny_splits["val"], tmp_path, threads=2,
        )  # fmt: skip
    assert_says(str(error.value), "params.yaml", "tuner.space", "Keras Tuner", "dense_units")
    assert tree_digest(tmp_path) == before
    assert (tmp_path / kept.key).is_dir()


@pytest.mark.slow
def test_a_search_killed_mid_trial_reruns_that_trial_and_loses_nothing(
    tmp_path: Path, tiny_splits: dict[str, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run_trial = DigitsTuner.run_trial
    started: list[str] = []

    def killed_in_second_trial(self: DigitsTuner, trial, *args, **kwargs):
        started.append(trial.trial_id)
        if len(started) == 2:
            raise KeyboardInterrupt
        return real_run_trial(self, trial, *args, **kwargs)

    three = dataclasses.replace(PARAMS, max_trials=3)
    monkeypatch.setattr(DigitsTuner, "run_trial", killed_in_second_trial)
    with pytest.raises(KeyboardInterrupt):
        search(three, tiny_splits, tmp_path / "killed", [])
    monkeypatch.undo()

    lines: list[str] = []
    resumed = search(three, tiny_splits, tmp_path / "killed", lines)
    assert lines[0].endswith("resuming with 1 trials done, 2 to run")
    whole = search(three, tiny_splits, tmp_path / "whole", [])
    assert resumed.completed() == [
        dataclasses.replace(r, seconds=s.seconds)
        for r, s in zip(whole.completed(), resumed.completed(), strict=True)
    ]


@pytest.mark.slow
def test_a_trial_reported_done_is_kept_by_a_search_stopped_right_after(
    tmp_path: Path, tiny_splits: dict[str, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after `trial 2/3` is printed: the rerun resumes with 2 trials done and
    trains only the third."""
    three = dataclasses.replace(PARAMS, max_trials=3)

    def interrupted_after_trial_2(line: str) -> None:
        if line.startswith("tune: trial 2/3 "):
            raise KeyboardInterrupt

    runtime.configure(seed=three.seed, threads=2)
    stopped = Search.for_params(
        three, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path, threads=2
    )
    with pytest.raises(KeyboardInterrupt):
        run_trials(stopped.tuner(interrupted_after_trial_2))

    trained: list[str] = []
    real_run_trial = DigitsTuner.run_trial

    def recorded(self: DigitsTuner, trial, *args, **kwargs):
        trained.append(trial.trial_id)
        return real_run_trial(self, trial, *args, **kwargs)

    monkeypatch.setattr(DigitsTuner, "run_trial", recorded)
    lines: list[str] = []
    resumed = search(three, tiny_splits, tmp_path, lines)
    assert lines[0].endswith("resuming with 2 trials done, 1 to run")
    assert trained == ["2"], "only the third trial (id 2) trains"
    assert [record.trial for record in resumed.completed()] == [1, 2, 3]


def _chief_oracle(project: Path) -> ResumableBayesianOracle:
    """The oracle a tuning chief serves, over `project`, reloaded when it holds a search."""
    oracle = ResumableBayesianOracle(
        lambda values: values,
        objective=kt.Objective("val_nll", direction="min"),
        max_trials=3,
        seed=3,
    )
    oracle._set_project_dir(str(project.parent), project.name)
    declare_space(oracle.hyperparameters, PARAMS.space)
    if (project / "oracle.json").is_file():
        oracle.reload()
    return oracle


def test_a_trial_a_worker_ended_is_not_run_again_after_the_chief_stops(tmp_path: Path) -> None:
    """A worker reports a trial done as soon as the chief's `end_trial` returns; the chief then
    stops (Ctrl-C, a killed stage, or the search's end). Reloaded, the chief must hand out the
    next trial, not the finished one again."""
    chief = _chief_oracle(tmp_path / "search")
    trial = chief.create_trial("tuner0")
    chief.update_trial(trial.trial_id, {"val_nll": 0.5})
    trial.status = "COMPLETED"
    chief.end_trial(trial)

    restarted = _chief_oracle(tmp_path / "search")
    assert restarted.create_trial("tuner0").trial_id == "1"
    assert [t.trial_id for t in read_trials(tmp_path / "search")] == ["0"]


def test_a_damaged_trial_says_to_start_the_search_over(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    """Resuming would read the same damaged trial again, so `dvc repro tune` alone cannot fix
    it: the message names the folder to delete."""
    done = search(PARAMS, tiny_splits, tmp_path, [])
    saved = done.project / "trial_0" / "trial.json"
    trial = json.loads(saved.read_text())
    trial["hyperparameters"]["values"]["base_filters"] = 9999
    saved.write_text(json.dumps(trial))
    with pytest.raises(DigitsError) as raised:
        done.completed()
    assert_says(
        str(raised.value), f"{done.project}, trial 0", "base_filters", "[4, 256]", "9999",
        f"delete {done.project}", "`dvc repro tune`",
    )  # fmt: skip


@pytest.mark.slow
def test_a_search_in_fresh_processes_runs_the_same_trials_as_one_process(
    tmp_path: Path, tiny_splits: dict[str, Split], capfd: pytest.CaptureFixture[str]
) -> None:
    three = dataclasses.replace(PARAMS, max_trials=3)
    in_process = search(three, tiny_splits, tmp_path / "one", [])
    chunked = search(
        dataclasses.replace(three, trials_per_process=2), tiny_splits, tmp_path / "chunks", []
    )
    assert chunked.key == in_process.key
    assert [(t.hyperparameters, t.score) for t in chunked.completed()] == [
        (t.hyperparameters, t.score) for t in in_process.completed()
    ]
    printed = capfd.readouterr().out
    assert "tune: trial 2/3 val_nll" in printed
    assert "tune: trial 3/3 val_nll" in printed


def _with(space: SearchSpace, **dimensions: SearchDimension) -> SearchSpace:
    return SearchSpace(tuple(dimensions.get(d.name, d) for d in space.dimensions))


def test_random_search_shares_the_initial_points_then_draws_its_own(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    """The baseline of benchmarks/search_vs_random.py: a paired comparison, same seed, same
    first `num_initial_points` trials (trained alike), then each algorithm's own proposals."""
    params = dataclasses.replace(PARAMS, max_trials=3, num_initial_points=2)
    runtime.configure(seed=params.seed, threads=2)
    found = {}
    for algorithm in ("bayesian", "random"):
        prepared = Search.for_params(
            params,
            RECIPE,
            tiny_splits["train"],
            tiny_splits["val"],
            tmp_path / algorithm,
            threads=2,
        )
        run_trials(prepared.tuner([].append, algorithm=algorithm))
        found[algorithm] = prepared.completed()
    bayesian, random = found["bayesian"], found["random"]
    assert [r.trial for r in random] == [1, 2, 3]
    assert bayesian[:2] == [dataclasses.replace(r, seconds=b.seconds) for r, b in
                            zip(random[:2], bayesian[:2], strict=True)]  # fmt: skip
    assert bayesian[2].hyperparameters != random[2].hyperparameters


def test_an_unknown_search_algorithm_is_refused(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    prepared = Search.for_params(
        PARAMS, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path, 2
    )
    with pytest.raises(ValueError) as error:
        prepared.tuner(algorithm="grid")  # type: ignore[arg-type]
    assert_says(str(error.value), "'grid'", "'bayesian'", "'random'")
    assert not any(tmp_path.iterdir()), "nothing is written before the algorithm is checked"


def test_a_searched_boolean_gets_its_type_back() -> None:
    tuner_hp = kt.HyperParameters()
    drawn = tuner_hp.Choice("batch_norm", [True, False], ordered=False)
    tuner_hp.Int("base_filters", 8, 32)
    # Keras Tuner's Choice casts booleans to int; if this starts failing, it no longer does.
    assert drawn == 1 and type(drawn) is int
    received = kt.HyperParameters.from_proto(tuner_hp.to_proto()).values  # a distributed trial
    for values in (tuner_hp.values, received):
        declared = as_declared(values)
        assert declared == {"batch_norm": True, "base_filters": 8}
        assert type(declared["batch_norm"]) is bool and type(declared["base_filters"]) is int


def test_declare_space_gives_a_searched_boolean_as_a_boolean() -> None:
    values = declare_space(kt.HyperParameters(), PARAMS.space)
    assert type(values.batch_norm) is bool


def test_as_declared_undoes_only_the_boolean_cast() -> None:
    declared = as_declared({"batch_norm": 0, "dropout": 0, "dense_units": 7.5, "width": 3})
    assert declared == {"batch_norm": False, "dropout": 0, "dense_units": 7.5, "width": 3}
    assert type(declared["batch_norm"]) is bool and type(declared["dropout"]) is int
    assert as_declared({"batch_norm": 2}) == {"batch_norm": 2}, "left for from_dict to reject"


def test_declare_space_gives_float_dimensions_as_floats() -> None:
    tuner_hp = kt.HyperParameters()
    tuner_hp.Fixed("dropout", 0)  # a whole number, as a hand-built trial may hold it
    values = declare_space(tuner_hp, PARAMS.space)
    assert type(values.dropout) is float and values.dropout == 0.0


def test_flops_per_image_counts_every_convolution_and_dense_multiply_add() -> None:
    one_block = Hyperparameters(1, 1, 4, 3, 3, True, 0.1, 16, 1e-3)
    conv = 2 * 28 * 28 * (3 * 3 * 1) * 4  # 'same' padding: 28 x 28 outputs, 4 filters
    dense = 2 * (14 * 14 * 4) * 16  # after 2 x 2 pooling
    logits = 2 * 16 * 10
    assert flops_per_image(build_model(one_block)) == conv + dense + logits
    assert mflops(one_block) == pytest.approx((conv + dense + logits) / 1e6)


CAPPED = dataclasses.replace(
    PARAMS, max_trials=4, num_initial_points=2, max_mflops_per_image=0.2
)  # of the tiny space's 8 architectures, 4 fit under 0.2 MFLOPs per image


def _values(blocks: int, filters: int, first_kernel: int) -> dict[str, Any]:
    point = Hyperparameters(blocks, 1, filters, first_kernel, 3, True, 0.1, 16, 1e-3)
    return dataclasses.asdict(point)


def test_within_cap_lowers_the_filters_or_gives_up(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    capped = Search.for_params(
        CAPPED, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path, threads=2
    )
    fits = _values(1, 4, 3)
    assert capped.within_cap(fits) is fits
    assert capped.within_cap(_values(1, 8, 5)) == _values(1, 4, 5)  # 0.36 -> 0.18 MFLOPs
    assert capped.within_cap(_values(2, 8, 5)) is None  # 0.28 MFLOPs at 4 filters


def test_no_trial_of_a_capped_search_exceeds_the_cap(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    for algorithm in ("bayesian", "random"):
        runtime.configure(seed=CAPPED.seed, threads=2)
        capped = Search.for_params(
            CAPPED, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path / algorithm, 2
        )
        run_trials(capped.tuner([].append, algorithm=algorithm))
        records = capped.completed()
        assert len(records) == 4
        assert all(record.mflops <= 0.2 for record in records), algorithm


def test_a_cap_that_no_point_meets_is_one_error(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    impossible = dataclasses.replace(CAPPED, max_mflops_per_image=0.01)
    capped = Search.for_params(
        impossible, RECIPE, tiny_splits["train"], tiny_splits["val"], tmp_path, threads=2
    )
    with pytest.raises(DigitsError) as error:
        run_trials(capped.tuner([].append))
    assert_says(str(error.value), "tuner.max_mflops_per_image", "raise the cap")
