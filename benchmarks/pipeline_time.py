"""Benchmark: wall time of the whole default pipeline at two revisions, one after the other.

For each revision: a fresh clone of this repository checked out at it, its `dvc.lock` removed,
then `dvc repro` timed end to end (every stage runs), with this checkout's virtual environment
and that clone's own `src/` first on PYTHONPATH. The machine is shared and its speed drifts by
3x from day to day, so only the ratio of two runs made one after the other means anything.

    python benchmarks/pipeline_time.py --base 1067e9f --head HEAD \\
        --out benchmarks/results/pipeline_time.json

With `--head-here` the head run is `dvc repro` in this checkout instead, so the timed run is the
one whose `dvc.lock`, `metrics/` and `plots/` get committed: `dvc.lock` removed, DVC's run cache
bypassed and the search state (`models/tuner`) moved aside so tune runs every trial, both put
back if the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_pipeline(revision: str) -> dict:
    """Seconds of `dvc repro` (all stages) in a fresh clone at `revision`, and its test metrics."""
    with tempfile.TemporaryDirectory(prefix="pipeline-time-") as folder:
        clone = Path(folder) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", revision], cwd=clone, check=True)
        (clone / "dvc.lock").unlink(missing_ok=True)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(clone / "src"),
        }
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=env, check=True)
        seconds = time.perf_counter() - start
        evaluate = json.loads((clone / "metrics" / "evaluate.json").read_text())
    return {
        "revision": revision,
        "wall_seconds": round(seconds, 1),
        "test_accuracy": evaluate["accuracy"],
    }


def time_pipeline_here() -> dict:
    """Seconds of `dvc repro` (all stages, as in a fresh clone) in this checkout, and its test
    metrics; the checkout's `dvc.lock` and search state are restored if it fails."""
    state, lock = REPO / "models" / "tuner", REPO / "dvc.lock"
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="pipeline-time-") as folder:
        kept_state, kept_lock = Path(folder) / "tuner", Path(folder) / "dvc.lock"
        if state.exists():
            shutil.move(state, kept_state)
        shutil.move(lock, kept_lock)
        try:
            start = time.perf_counter()
            subprocess.run(["dvc", "repro", "--no-run-cache"], cwd=REPO, check=True)
            seconds = time.perf_counter() - start
        except BaseException:
            shutil.rmtree(state, ignore_errors=True)
            if kept_state.exists():
                shutil.move(kept_state, state)
            shutil.move(kept_lock, lock)
            raise
    evaluate = json.loads((REPO / "metrics" / "evaluate.json").read_text())
    return {
        "revision": f"{revision} (this checkout)",
        "wall_seconds": round(seconds, 1),
        "test_accuracy": evaluate["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--head-here", action="store_true", help="time the head in this checkout")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline_time.json"))
    args = parser.parse_args()
    from digits.runtime import environment

    runs = [time_pipeline(args.base)]
    runs.append(time_pipeline_here() if args.head_here else time_pipeline(args.head))
    result = {
        "runs": runs,
        "head_over_base": round(runs[1]["wall_seconds"] / runs[0]["wall_seconds"], 2),
        "environment": environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
