"""Distributed tuning: a chief and two workers on 127.0.0.1, driven by the tune stage's code."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from digits.data import Split, save_split
from digits.distributed import completed_trials
from digits.errors import DigitsError
from digits.params import TunerParams
from digits.tuning import SearchResult
from tests.test_tuning import PARAMS, search

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path: Path, tiny_splits: dict[str, Split], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory like the repository's: params.yaml and the prepared splits."""
    monkeypatch.chdir(tmp_path)
    for name in ("train", "val"):
        save_split(tiny_splits[name], tmp_path / "data" / "prepared" / f"{name}.npz")
    return tmp_path


def write_params(project: Path, tuner: TunerParams) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tuner"] = _plain(dataclasses.asdict(tuner))
    params["tuner"]["trials_per_process"] = tuner.trials_per_process
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def worker_pid(name: str) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"digits.distributed" in command and f"KERASTUNER_TUNER_ID={name}".encode() in environ:
            return int(proc.name)
    return None


def test_two_workers_run_every_trial_exactly_once(
    project: Path, tiny_splits: dict[str, Split]
) -> None:
    tuner = dataclasses.replace(PARAMS, max_trials=4, workers=2)
    write_params(project, tuner)
    lines: list[str] = []
    result = search(tuner, tiny_splits, project / "models" / "tuner", lines)
    assert [record.trial for record in result.trials] == [1, 2, 3, 4]
    assert result.trials_run == 4
    values = [tuple(sorted(record.hyperparameters.items())) for record in result.trials]
    assert len(set(values)) == 4, "no trial was run twice"
    assert any(line.startswith("tune: chief serving the oracle on 127.0.0.1:") for line in lines)


def test_a_worker_killed_mid_search_stops_the_stage_and_the_search_resumes(
    project: Path, tiny_splits: dict[str, Split]
) -> None:
    tuner = dataclasses.replace(PARAMS, max_trials=6, workers=2)
    write_params(project, tuner)
    state = project / "models" / "tuner"
    outcome: list[SearchResult | Exception] = []

    def run() -> None:
        try:
            outcome.append(search(tuner, tiny_splits, state, []))
        except DigitsError as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        projects = [p for p in state.glob("*") if p.is_dir()] if state.is_dir() else []
        if projects and completed_trials(projects[0]) >= 1 and (pid := worker_pid("tuner1")):
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the stage must not hang on a dead worker"
    assert isinstance(outcome[0], DigitsError)
    assert "tuning worker tuner1 died (exit code -9)" in str(outcome[0])
    assert "rerun `dvc repro tune` to resume" in str(outcome[0])

    resumed = search(tuner, tiny_splits, state, [])
    assert [record.trial for record in resumed.trials] == [1, 2, 3, 4, 5, 6]
