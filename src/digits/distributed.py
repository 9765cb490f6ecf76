"""Distributed tuning on Keras Tuner's own chief/worker mode (gRPC).

Keras Tuner reads `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`: a
process whose id contains "chief" serves the oracle; every other process asks it for trials and
runs them. `run_cluster` starts a chief and N workers as `python -m digits.distributed` on this
machine and watches them: the chief waits forever for a worker that died mid-trial, so a dead
worker, or no finished trial for `tuner.trial_timeout_minutes`, stops everything with one error
and keeps the search state for a resume. On other machines, start more workers with the same
command and environment (see README).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from digits.errors import DigitsError

STATE_ENV = "DIGITS_TUNER_STATE"
STARTUP_SECONDS = 120
POLL_SECONDS = 1.0


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def completed_trials(project: Path) -> int:
    count = 0
    for path in project.glob("trial_*/trial.json"):
        try:
            count += json.loads(path.read_text()).get("status") == "COMPLETED"
        except (OSError, json.JSONDecodeError):
            continue  # being written right now
    return count


def run_cluster(
    workers: int,
    project: Path,
    timeout_minutes: float,
    report: Callable[[str], None] = print,
) -> None:
    """Run the search in `project` with a chief and `workers` workers; return when all are done."""
    host = os.environ.get("KERASTUNER_ORACLE_IP", "127.0.0.1")
    port = os.environ.get("KERASTUNER_ORACLE_PORT") or str(free_port(host))
    base = {
        **os.environ,
        "KERASTUNER_ORACLE_IP": host,
        "KERASTUNER_ORACLE_PORT": port,
        STATE_ENV: str(project.parent),
    }
    command = [sys.executable, "-m", "digits.distributed"]
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["chief"] = subprocess.Popen(command, env={**base, "KERASTUNER_TUNER_ID": "chief"})
        _wait_for_chief(processes["chief"], host, int(port))
        report(f"tune: chief serving the oracle on {host}:{port}; starting {workers} workers")
        for index in range(workers):
            name = f"tuner{index}"
            processes[name] = subprocess.Popen(command, env={**base, "KERASTUNER_TUNER_ID": name})
        _watch(processes, project, timeout_minutes)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_chief(chief: subprocess.Popen, host: str, port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if chief.poll() is not None:
            raise DigitsError(
                f"the tuning chief exited with code {chief.returncode} before serving"
            )
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(POLL_SECONDS)
    raise DigitsError(f"the tuning chief did not start serving on {host}:{port} within 2 minutes")


def _watch(processes: dict[str, subprocess.Popen], project: Path, timeout_minutes: float) -> None:
    chief = processes["chief"]
    workers = {name: p for name, p in processes.items() if name != "chief"}
    finished, last_progress = completed_trials(project), time.monotonic()
    resume = f"the search state in {project} is kept: rerun `dvc repro tune` to resume"
    while chief.poll() is None:
        for name, worker in workers.items():
            if worker.poll() not in (None, 0):
                raise DigitsError(
                    f"tuning worker {name} died (exit code {worker.returncode}); {resume}"
                )
        now = completed_trials(project)
        if now != finished:
            finished, last_progress = now, time.monotonic()
        elif time.monotonic() - last_progress > timeout_minutes * 60:
            raise DigitsError(
                f"no trial finished in {timeout_minutes:g} minutes (tuner.trial_timeout_minutes); "
                f"a worker may be stuck; {resume}"
            )
        time.sleep(POLL_SECONDS)
    if chief.returncode != 0:
        raise DigitsError(f"the tuning chief exited with code {chief.returncode}; {resume}")


def main() -> None:
    """One chief or worker process, as `KERASTUNER_TUNER_ID` says; run from the repository root."""
    from digits import runtime
    from digits.data import load_splits
    from digits.params import load_params
    from digits.tuning import build_tuner, search_key

    role = os.environ.get("KERASTUNER_TUNER_ID")
    if not role or not os.environ.get("KERASTUNER_ORACLE_IP"):
        raise DigitsError(
            "set KERASTUNER_TUNER_ID (chief, or a worker name such as tuner1), "
            "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT"
        )
    params = load_params()
    tuner_params = params.tuner
    runtime.configure(tuner_params.seed, params.runtime.threads)
    splits = load_splits(names=("train", "val"))
    train = splits["train"].subset(tuner_params.images_per_trial, tuner_params.seed)
    state_dir = Path(os.environ.get(STATE_ENV, "models/tuner"))
    key = search_key(tuner_params, train, splits["val"])
    tuner = build_tuner(tuner_params, state_dir, key, report=print)
    tuner.search(train, splits["val"], tuner_params, verbose=0)


if __name__ == "__main__":
    from digits.cli import run_stage

    run_stage(main)
