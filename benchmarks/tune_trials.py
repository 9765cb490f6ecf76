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

import numpy as np
import psutil

from digits import runtime
from digits.data import Split, load_split
from digits.oracle import count_completed_trials
from digits.params import TrainParams, TunerParams, load_params
from digits.processes import run_in_chunks
from digits.search import Search, run_trials

SAMPLE_SECONDS = 0.5


def tree_rss_mib(root: int) -> float:
    """Resident memory (MiB) of process `root` and all its descendants."""
    total = 0
    parent = psutil.Process(root)
    for process in [parent, *parent.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # the process ended while we looked
    return total / 2**20


class MemoryWatch(threading.Thread):
    """Samples the process tree's memory; notes it each time another trial completes."""

    def __init__(self, project: Path) -> None:
        super().__init__(daemon=True)
        self.project, self.stop = project, threading.Event()
        self.peak, self.after_trial = 0.0, []

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            now = tree_rss_mib(os.getpid())
            self.peak = max(self.peak, now)
            done = count_completed_trials(self.project)
            self.after_trial.extend([now] * (done - len(self.after_trial)))


def run_search(search: Search, threads: int) -> None:
    """The search as the tune stage runs it (in chunks when `trials_per_process` is set)."""
    if search.params.trials_per_process:
        run_in_chunks(search, threads)
    else:
        run_trials(search.tuner())


def measure(
    label: str, tuner: TunerParams, recipe: TrainParams, train: Split, val: Split, threads: int
) -> dict:
    """Wall time (minutes), seconds per trial (training, validation included), memory (MiB)
    after each trial and every trial's score."""
    with tempfile.TemporaryDirectory(prefix="tune-benchmark-") as state:
        search = Search.for_params(tuner, recipe, train, val, Path(state), threads)
        watch = MemoryWatch(search.project)
        watch.start()
        start = time.perf_counter()
        run_search(search, threads)
        wall = time.perf_counter() - start
        watch.stop.set()
        watch.join()
        records = search.completed()
    seconds = [record.seconds for record in records]
    memory = watch.after_trial
    return {
        "run": label,
        "trials": len(records),
        "wall_minutes": round(wall / 60, 1),
        "median_seconds_per_trial": round(statistics.median(seconds), 1),
        "p90_seconds_per_trial": round(float(np.percentile(seconds, 90)), 1),
        "rss_mib_after_trial_1": round(memory[0]),
        "rss_mib_after_last_trial": round(memory[-1]),
        "rss_growth_mib_per_trial": round(float(np.polyfit(range(len(memory)), memory, 1)[0]), 2),
        "peak_rss_mib": round(watch.peak),
        "best_score": round(min(record.score for record in records), 4),
        "rss_mib_after_each_trial": [round(value) for value in memory],
        "score_of_each_trial": [record.score for record in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.npz"))
    parser.add_argument("--val", type=Path, default=Path("data/prepared/val.npz"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tune_trials.json"))
    args = parser.parse_args()

    params = load_params()
    threads = params.runtime.threads
    runtime.configure(params.tuner.seed, threads)
    train, val = load_split(args.train), load_split(args.val)
    stage = dataclasses.replace(params.tuner, max_trials=args.trials, workers=0)
    one_process = dataclasses.replace(stage, trials_per_process=None)
    runs = [
        measure(f"stage (trials_per_process={stage.trials_per_process})", stage, params.train,
                train, val, threads),
        measure("baseline (one process)", one_process, params.train, train, val, threads),
    ]  # fmt: skip
    chunked, whole = runs[0]["score_of_each_trial"], runs[1]["score_of_each_trial"]
    same = sum(a == b for a, b in zip(chunked, whole, strict=True))
    result = {"runs": runs, "identical_trial_scores": same, "environment": runtime.environment()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    columns = [key for key in runs[0] if not key.endswith("_each_trial")]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for run in runs:
        print("| " + " | ".join(str(run[key]) for key in columns) + " |")
    print(f"identical trial scores: {same} of {len(runs[0]['score_of_each_trial'])}")


if __name__ == "__main__":
    main()
