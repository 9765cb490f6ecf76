"""Benchmark: seconds per trial and memory over a long search with the default space.

Runs `tuner.max_trials` (default 50) trials of the default search from params.yaml on the
prepared splits (run `dvc repro prepare` first), in a scratch directory so the pipeline's own
search is untouched. Resident memory is read after every trial: it should stay flat, since Keras
Tuner is known to grow RAM trial after trial when sessions are not cleared.

    python benchmarks/tune_trials.py --trials 50 --out benchmarks/results/tune_trials.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from digits import runtime
from digits.data import load_splits
from digits.params import load_params
from digits.tuning import run_search


def memory_mib() -> tuple[float, float]:
    """Current and peak resident memory of this process, from /proc (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tune_trials.json"))
    args = parser.parse_args()

    params = load_params()
    tuner = dataclasses.replace(params.tuner, max_trials=args.trials)
    runtime.configure(tuner.seed, params.runtime.threads)
    splits = load_splits(names=("train", "val"))
    rss_after_trial: list[float] = []

    def report(line: str) -> None:
        print(line, flush=True)
        if line.startswith("tune: trial "):
            rss_after_trial.append(memory_mib()[0])

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tune-benchmark-") as state:
        result = run_search(tuner, splits["train"], splits["val"], Path(state), report=report)
    wall = time.perf_counter() - start

    seconds = [record.seconds for record in result.trials]
    slope = float(np.polyfit(np.arange(len(rss_after_trial)), rss_after_trial, 1)[0])
    summary = {
        "trials": len(result.trials),
        "wall_minutes": round(wall / 60, 1),
        "median_seconds_per_trial": round(statistics.median(seconds), 1),
        "p90_seconds_per_trial": round(float(np.percentile(seconds, 90)), 1),
        "rss_mib_after_trial_1": round(rss_after_trial[0]),
        "rss_mib_after_last_trial": round(rss_after_trial[-1]),
        "rss_growth_mib_per_trial": round(slope, 2),
        "peak_rss_mib": round(memory_mib()[1]),
        "best_val_accuracy": round(result.best_score, 4),
        "rss_mib_after_each_trial": [round(value) for value in rss_after_trial],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print("| " + " | ".join(k for k in summary if k != "rss_mib_after_each_trial") + " |")
    print(
        "| "
        + " | ".join(str(v) for k, v in summary.items() if k != "rss_mib_after_each_trial")
        + " |"
    )


if __name__ == "__main__":
    main()
