"""Benchmark: wall time of the whole default pipeline at two revisions, one after the other.

For each revision: a fresh clone of this repository checked out at it, its `dvc.lock` removed,
then `dvc repro` timed end to end (every stage runs), with this checkout's virtual environment
and that clone's own `src/` first on PYTHONPATH. The machine is shared and its speed drifts by
3x from day to day, so only the ratio of two runs made one after the other means anything.

    python benchmarks/pipeline_time.py --base 1067e9f --head HEAD \\
        --out benchmarks/results/pipeline_time.json
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline_time.json"))
    args = parser.parse_args()
    from digits.runtime import environment

    runs = [time_pipeline(args.base), time_pipeline(args.head)]
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
