"""Benchmark: seconds per trial and memory over a long search with the default space.

Runs `--trials` (default 50) trials of the default search from params.yaml on the prepared splits
(run `dvc repro prepare` first) twice, in scratch directories so the pipeline's own search is
untouched: as the stage runs it (a fresh process every `tuner.trials_per_process` trials) and, as
the baseline, all trials in one process. Memory is the resident set of the whole process tree,
sampled twice a second and read after every completed trial.

    python benchmarks/tune_trials.py --trials 50 --out benchmarks/results/tune_trials.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from digits import runtime
from digits.data import load_splits
from digits.distributed import completed_trials
from digits.params import TunerParams, load_params
from digits.tuning import run_search

SAMPLE_SECONDS = 0.5


def tree_rss_mib(root: int) -> float:
    """Resident memory of `root` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


class MemoryWatch(threading.Thread):
    """Samples the process tree's memory; notes it each time another trial completes."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(daemon=True)
        self.state_dir, self.stop = state_dir, threading.Event()
        self.peak, self.after_trial = 0.0, []

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            now = tree_rss_mib(os.getpid())
            self.peak = max(self.peak, now)
            done = sum(completed_trials(project) for project in self.state_dir.glob("*/"))
            self.after_trial.extend([now] * (done - len(self.after_trial)))


def measure(label: str, tuner: TunerParams, splits: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tune-benchmark-") as state:
        watch = MemoryWatch(Path(state))
        watch.start()
        start = time.perf_counter()
        result = run_search(tuner, splits["train"], splits["val"], Path(state), report=print)
        wall = time.perf_counter() - start
        watch.stop.set()
        watch.join()
    seconds = [record.seconds for record in result.trials]
    memory = watch.after_trial
    return {
        "run": label,
        "trials": len(result.trials),
        "wall_minutes": round(wall / 60, 1),
        "median_seconds_per_trial": round(statistics.median(seconds), 1),
        "p90_seconds_per_trial": round(float(np.percentile(seconds, 90)), 1),
        "rss_mib_after_trial_1": round(memory[0]),
        "rss_mib_after_last_trial": round(memory[-1]),
        "rss_growth_mib_per_trial": round(float(np.polyfit(range(len(memory)), memory, 1)[0]), 2),
        "peak_rss_mib": round(watch.peak),
        "best_val_accuracy": round(result.best_score, 4),
        "rss_mib_after_each_trial": [round(value) for value in memory],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tune_trials.json"))
    args = parser.parse_args()

    params = load_params()
    runtime.configure(params.tuner.seed, params.runtime.threads)
    splits = load_splits(names=("train", "val"))
    stage = dataclasses.replace(params.tuner, max_trials=args.trials)
    runs = [
        measure(f"stage (trials_per_process={stage.trials_per_process})", stage, splits),
        measure(
            "baseline (one process)", dataclasses.replace(stage, trials_per_process=None), splits
        ),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")

    columns = [key for key in runs[0] if key != "rss_mib_after_each_trial"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for run in runs:
        print("| " + " | ".join(str(run[key]) for key in columns) + " |")


if __name__ == "__main__":
    main()
