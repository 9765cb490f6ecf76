"""Benchmark: wall time of the whole default pipeline at two revisions, one after the other.

For each revision: a fresh clone of this repository checked out at it, its `dvc.lock` removed,
then `dvc repro` timed end to end (every stage runs), with this checkout's virtual environment
and that clone's own `src/` first on PYTHONPATH. The machine is shared and its speed drifts by
3x from day to day, so only the ratio of two runs made one after the other means anything.

    python benchmarks/pipeline_time.py --base 1067e9f --head HEAD \\
        --out benchmarks/results/pipeline_time.json

With `--head-here` the head run is `dvc repro` in this checkout instead, so the timed run is the
one whose `dvc.lock`, `metrics/` and `plots/` get committed: `dvc.lock` removed, DVC's run cache
bypassed and the search state (`models/tuner`) moved aside so tune runs every trial; both are
kept in `benchmarks/work/pipeline_time/` and put back if the run fails.
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


def _environment(src: Path) -> dict[str, str]:
    """This process's environment with its virtual environment first on PATH and `src` on
    PYTHONPATH, so both runs use the same `dvc` and `python` and their own package code."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(src),
    }


def time_pipeline(revision: str) -> dict:
    """Seconds of `dvc repro` (all stages) in a fresh clone at `revision`, and its test metrics."""
    with tempfile.TemporaryDirectory(prefix="pipeline-time-") as folder:
        clone = Path(folder) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", revision], cwd=clone, check=True)
        (clone / "dvc.lock").unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=_environment(clone / "src"), check=True)
        seconds = time.perf_counter() - start
        return _result(revision, seconds, clone)


def _result(revision: str, seconds: float, root: Path) -> dict:
    """What one timed run records: the revision, its wall seconds and `root`'s test accuracy."""
    evaluate = json.loads((root / "metrics" / "evaluate.json").read_text())
    return {
        "revision": revision,
        "wall_seconds": round(seconds, 1),
        "test_accuracy": evaluate["accuracy"],
    }


def _checkout_revision() -> str:
    """HEAD's short hash, marked `+uncommitted` when tracked files differ from it."""

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", *command], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else "")


def time_pipeline_here() -> dict:
    """Seconds of `dvc repro` (all stages, as in a fresh clone) in this checkout, and its test
    metrics. The previous `dvc.lock` and search state are moved to
    `benchmarks/work/pipeline_time/<time>/` first (kept there; put back if the run fails, when
    the outputs it already rewrote come back with `git checkout metrics plots && dvc checkout`).

    Raises:
        SystemExit: this checkout has no `dvc.lock` (run `dvc repro` once first).
    """
    state, lock = REPO / "models" / "tuner", REPO / "dvc.lock"
    if not lock.is_file():
        raise SystemExit(f"pipeline_time: {lock} not found: run `dvc repro` once first")
    revision = _checkout_revision()
    kept = REPO / "benchmarks" / "work" / "pipeline_time" / time.strftime("%Y%m%d-%H%M%S")
    kept.mkdir(parents=True)
    shutil.move(lock, kept / "dvc.lock")
    if state.exists():
        shutil.move(state, kept / "tuner")
    print(f"pipeline_time: the previous dvc.lock and search state are kept in {kept}", flush=True)
    try:
        start = time.perf_counter()
        subprocess.run(
            ["dvc", "repro", "--no-run-cache"], cwd=REPO, env=_environment(REPO / "src"), check=True
        )
        seconds = time.perf_counter() - start
    except BaseException:
        shutil.rmtree(state, ignore_errors=True)
        if (kept / "tuner").exists():
            shutil.move(kept / "tuner", state)
        shutil.move(kept / "dvc.lock", lock)
        raise
    return _result(f"{revision} (this checkout)", seconds, REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--head", default="HEAD")
    head.add_argument("--head-here", action="store_true", help="time the head in this checkout")
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
