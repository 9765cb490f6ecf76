"""Running a search in other processes: fresh processes in chunks, or a chief with workers.

- `run_in_chunks`: TensorFlow keeps part of every trained model alive even after
  `clear_session()` (https://github.com/keras-team/keras/issues/17458), so a process's memory
  grows with every trial it runs, without end; `benchmarks/results/tune_trials.json` holds the
  growth per trial, in one process and in chunks. Each chunk runs in a fresh process that
  resumes from the saved state; chunks end at multiples of `trials_per_process`, so a resumed
  search runs the same chunks.
- `run_cluster`: Keras Tuner's own chief/worker mode (gRPC). The chief and each worker are the
  tune stage's own command, told their role by `KERASTUNER_TUNER_ID`. The chief waits forever
  for a worker that died mid-trial, so a dead worker, or no finished trial for
  `tuner.trial_timeout_minutes`, stops everything with one error and keeps the search state.

Every child process asks Linux to kill it when the stage's process dies (`die_with_parent`): a
stage killed with SIGKILL (or out of memory) would otherwise leave a chunk, chief or worker
running on and writing the search state that the rerun resumes from. The stage's own cleanup
(Ctrl-C, `kill`) still ends its children with SIGTERM first.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from digits import runtime
from digits.errors import DigitsError
from digits.oracle import ORACLE_IP, ORACLE_PORT, TUNER_ID, count_completed_trials
from digits.search import Search, run_trials

STARTUP_SECONDS = 120
POLL_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # prctl(2) option, from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a child process of `parent` (a pid): have Linux kill this process when its parent
    dies (prctl(2) PR_SET_PDEATHSIG; kept across exec). A no-op on other systems.

    SIGKILL, not SIGTERM: a worker whose chief died with the stage waits in a gRPC call to it
    that never returns to Python, so a SIGTERM handler would never run and the worker would
    live on after the stage."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def resume_hint(search: Search) -> str:
    return f"the search state in {search.project} is kept: rerun `dvc repro tune` to resume"


def run_in_chunks(search: Search, threads: int) -> None:
    """Run the remaining trials `tuner.trials_per_process` at a time, each chunk in a fresh
    process that prints its own progress. Raises `DigitsError` if a chunk's process dies."""
    per_process = search.params.trials_per_process
    assert per_process is not None
    started = len(search.completed())
    while started < search.planned_trials:
        until = min(search.planned_trials, (started // per_process + 1) * per_process)
        with ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            try:
                now = pool.submit(_run_chunk, search, until, threads).result()
            except BrokenProcessPool as error:
                raise DigitsError(
                    f"the tuning process for trials {started + 1}-{until} died (killed, or out "
                    f"of memory); {resume_hint(search)}"
                ) from error
        if now == started:
            return
        started = now


def _run_chunk(search: Search, until: int, threads: int) -> int:
    """In a fresh process: run the search up to `until` trials; return the trials finished."""
    runtime.configure(search.params.seed, threads)
    run_trials(search.tuner(functools.partial(print, flush=True), until=until))
    return len(search.completed())


def free_port(host: str) -> int:
    """A TCP port the OS finds free on `host` now; another process may still take it first."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_chief(host: str, port: int, chief: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on host:port; raises `DigitsError` after
    `STARTUP_SECONDS` or when the local `chief` process exits first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if chief is not None and chief.poll() is not None:
            raise DigitsError(
                f"the tuning chief exited with code {chief.returncode} before serving"
            )
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(POLL_SECONDS)
    raise DigitsError(
        f"no tuning chief answers on {host}:{port} after {STARTUP_SECONDS} s: start the chief "
        f"first (`dvc repro tune` with {ORACLE_IP}/{ORACLE_PORT} set on its machine), and "
        "check the address and any firewall"
    )


def run_cluster(
    search: Search,
    command: list[str],
    address: tuple[str, int] | None,
    report: Callable[[str], None] = print,
) -> None:
    """Run the search with a chief and `tuner.workers` local workers (0: only workers on other
    machines), each running `command` (the stage's own command line); return when the chief
    has finished.

    The chief serves on `address` (host, port), or on a free loopback port when it is None;
    workers on other machines may join it there. Raises `DigitsError` when any process fails.
    """
    host, port = address or ("127.0.0.1", free_port("127.0.0.1"))
    base = {key: value for key, value in os.environ.items() if key != TUNER_ID}
    base.update({ORACLE_IP: host, ORACLE_PORT: str(port)})
    processes: dict[str, subprocess.Popen] = {}
    start = functools.partial(
        subprocess.Popen, command, preexec_fn=functools.partial(die_with_parent, os.getpid())
    )
    try:
        processes["chief"] = start(env={**base, TUNER_ID: "chief"})
        wait_for_chief(host, port, processes["chief"])
        workers = search.params.workers
        report(f"tune: chief serving the oracle on {host}:{port}; starting {workers} workers")
        for index in range(workers):
            name = f"tuner{index}"
            processes[name] = start(env={**base, TUNER_ID: name})
        _watch(processes, search)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _watch(processes: dict[str, subprocess.Popen], search: Search) -> None:
    chief = processes["chief"]
    workers = {name: p for name, p in processes.items() if name != "chief"}
    timeout_minutes = search.params.trial_timeout_minutes
    finished, last_progress = count_completed_trials(search.project), time.monotonic()
    while chief.poll() is None:
        for name, worker in workers.items():
            if worker.poll() not in (None, 0):
                raise DigitsError(
                    f"tuning worker {name} died (exit code {worker.returncode}); "
                    f"{resume_hint(search)}"
                )
        now = count_completed_trials(search.project)
        if now != finished:
            finished, last_progress = now, time.monotonic()
        elif time.monotonic() - last_progress > timeout_minutes * 60:
            raise DigitsError(
                f"no trial finished in {timeout_minutes:g} minutes (tuner.trial_timeout_minutes); "
                f"a worker may be stuck; {resume_hint(search)}"
            )
        time.sleep(POLL_SECONDS)
    if chief.returncode != 0:
        raise DigitsError(
            f"the tuning chief exited with code {chief.returncode}; {resume_hint(search)}"
        )
