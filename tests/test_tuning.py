"""The search resumes: more trials run only the new ones; a changed definition starts fresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from digits import runtime
from digits.data import Split
from digits.params import Hyperparameter, SearchSpace, TunerParams
from digits.tuning import DigitsTuner, run_search

SPACE = SearchSpace(
    conv_blocks=Hyperparameter(values=(1, 2)),
    convs_per_block=Hyperparameter(values=(1,)),
    base_filters=Hyperparameter(values=(4, 8)),
    kernel_size=Hyperparameter(values=(3,)),
    batch_norm=Hyperparameter(values=(True, False)),
    dropout=Hyperparameter(min=0.1, max=0.3, step=0.1),
    dense_units=Hyperparameter(values=(16,)),
    learning_rate=Hyperparameter(min=1e-3, max=1e-2, sampling="log"),
)
PARAMS = TunerParams(
    max_trials=2, num_initial_points=1, seed=3, epochs_per_trial=1, images_per_trial=200,
    batch_size=64, early_stopping_patience=0, workers=0, trial_timeout_minutes=5,
    trials_per_process=None, space=SPACE,
)  # fmt: skip


def search(params: TunerParams, splits: dict[str, Split], state: Path, lines: list[str]):
    runtime.configure(seed=params.seed, threads=2)
    return run_search(params, splits["train"], splits["val"], state, report=lines.append)


def test_raising_max_trials_runs_only_the_new_trials(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    lines: list[str] = []
    first = search(PARAMS, tiny_splits, tmp_path, lines)
    assert (first.trials_run, len(first.trials)) == (2, 2)

    lines.clear()
    second = search(dataclasses.replace(PARAMS, max_trials=3), tiny_splits, tmp_path, lines)
    assert (second.trials_run, len(second.trials)) == (1, 3)
    assert second.key == first.key
    assert [t.hyperparameters for t in second.trials[:2]] == [
        t.hyperparameters for t in first.trials
    ]
    assert lines[0] == f"tune: search {first.key}: resuming with 2 trials done, 1 to run"
    assert lines[1].startswith("tune: trial 3/3 val_accuracy ")

    again = search(dataclasses.replace(PARAMS, max_trials=3), tiny_splits, tmp_path, lines)
    assert again.trials_run == 0
    assert again.best == second.best


def test_a_changed_space_starts_a_fresh_search(
    tmp_path: Path, tiny_splits: dict[str, Split]
) -> None:
    lines: list[str] = []
    first = search(PARAMS, tiny_splits, tmp_path, lines)
    narrower = dataclasses.replace(SPACE, base_filters=Hyperparameter(values=(4,)))
    lines.clear()
    fresh = search(dataclasses.replace(PARAMS, space=narrower), tiny_splits, tmp_path, lines)
    assert fresh.key != first.key
    assert fresh.trials_run == 2
    assert all(t.hyperparameters["base_filters"] == 4 for t in fresh.trials)
    assert lines[0] == f"tune: search definition changed; removing old search {first.key}"
    assert [p.name for p in tmp_path.iterdir()] == [fresh.key]


@pytest.mark.parametrize(
    "change", [{"seed": 4}, {"num_initial_points": 2}, {"epochs_per_trial": 2}]
)
def test_any_change_but_max_trials_changes_the_key(
    tiny_splits: dict[str, Split], change: dict
) -> None:
    from digits.tuning import search_key

    train, val = tiny_splits["train"], tiny_splits["val"]
    assert search_key(PARAMS, train, val) != search_key(
        dataclasses.replace(PARAMS, **change), train, val
    )
    assert search_key(PARAMS, train, val) == search_key(
        dataclasses.replace(PARAMS, max_trials=50), train, val
    )


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

    monkeypatch.setattr(DigitsTuner, "run_trial", killed_in_second_trial)
    with pytest.raises(KeyboardInterrupt):
        search(dataclasses.replace(PARAMS, max_trials=3), tiny_splits, tmp_path, [])
    monkeypatch.undo()

    lines: list[str] = []
    resumed = search(dataclasses.replace(PARAMS, max_trials=3), tiny_splits, tmp_path, lines)
    assert lines[0].endswith("resuming with 1 trials done, 2 to run")
    assert resumed.trials_run == 2
    assert [record.trial for record in resumed.trials] == [1, 2, 3]


def test_a_search_in_fresh_processes_runs_the_same_trials_as_one_process(
    tmp_path: Path, tiny_splits: dict[str, Split], capfd: pytest.CaptureFixture[str]
) -> None:
    three = dataclasses.replace(PARAMS, max_trials=3)
    in_process = search(three, tiny_splits, tmp_path / "one", [])
    chunked = search(
        dataclasses.replace(three, trials_per_process=2), tiny_splits, tmp_path / "chunks", []
    )
    assert chunked.key == in_process.key
    assert [(t.hyperparameters, t.score) for t in chunked.trials] == [
        (t.hyperparameters, t.score) for t in in_process.trials
    ]
    printed = capfd.readouterr().out
    assert "tune: trial 2/3 val_accuracy" in printed
    assert "tune: trial 3/3 val_accuracy" in printed
