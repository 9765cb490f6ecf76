"""A tune stage killed outright (SIGKILL, the out-of-memory killer) takes its child processes
with it: no chunk, chief or worker runs on, writing the search state a rerun resumes from."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from digits.data import Split
from digits.oracle import count_completed_trials
from tests.helpers import TINY_TUNER, stage_command, stage_project

pytestmark = pytest.mark.slow

MAX_TRIALS = 8


def finished_trials(project: Path) -> int:
    return sum(count_completed_trials(search) for search in (project / "models/tuner").glob("*"))


def still_running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of `processes` still running after up to `timeout` seconds. A process that has
    exited counts as ended even when no one has reaped it yet (a zombie: in a container the
    init process may not reap orphans promptly)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for process in processes:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def kill_after_first_trial(project: Path, children: int) -> tuple[int, list[psutil.Process]]:
    """Start the tune stage, SIGKILL it once a trial has finished and `children` child
    processes run; the trials finished at that moment and the children left behind."""
    stage = subprocess.Popen(
        stage_command("tune"), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and stage.poll() is None:
        running = psutil.Process(stage.pid).children()
        finished = finished_trials(project)
        if finished and len(running) >= children:
            stage.send_signal(signal.SIGKILL)
            stage.wait()
            return finished, running
        time.sleep(0.2)
    raise AssertionError(f"the stage ended (code {stage.poll()}) or never ran {children} children")


@pytest.mark.parametrize(
    ("workers", "per_process", "children"),
    [(0, MAX_TRIALS, 1), (2, None, 3)],
    ids=["chunked", "chief-and-workers"],
)
def test_children_die_with_the_stage(
    tmp_path: Path,
    tiny_splits: dict[str, Split],
    workers: int,
    per_process: int | None,
    children: int,
) -> None:
    tuner = dataclasses.replace(
        TINY_TUNER, max_trials=MAX_TRIALS, workers=workers, trials_per_process=per_process
    )
    project = stage_project(tmp_path, {k: tiny_splits[k] for k in ("train", "val")}, tuner)
    finished, orphans = kill_after_first_trial(project, children)
    alive = still_running(orphans, timeout=120)
    for process in alive:
        os.kill(process.pid, signal.SIGKILL)
    assert not alive, f"{len(alive)} child process(es) outlived the killed stage"
    # A child in the middle of a trial when it was told to stop may not finish it, and none
    # starts another: without `die_with_parent` they ran all MAX_TRIALS.
    assert finished_trials(project) <= finished + workers + 1 < MAX_TRIALS
