"""Benchmark: does a longer search pay? The default 8-trial search against
`dvc exp run -S tuner.max_trials=50`, each chosen point fully trained with several training
seeds, decided on validation.

Each step runs the way a user would, and is skipped when its result exists, so a killed run
resumes by running the same command:

1. the long search, a DVC experiment of the tune stage:
   `dvc exp run tune --temp -n trials-50 -S tuner.max_trials=50`. It resumes the committed
   search state (`models/tuner`), so only the new trials and the re-scoring run; its chosen
   point is read from `dvc exp show --json` (metrics/tune.json).
2. each chosen point (the committed one from metrics/tune.json, and the long search's) trained
   with `--seeds` by `benchmarks/seed_sweep.py run` (queued `dvc exp run train` experiments
   with `train.hyperparameters` set, one at a time), into `benchmarks/results/trial_budget/`.
3. the decision: the pooled sd `s` of best validation accuracy over both points' trainings, the
   standard error of the difference of the two means `s * sqrt(1/n_short + 1/n_long)`; the
   longer search pays when its mean is above the short one's by more than 2 standard errors,
   or at most 2 below it with at least 10% fewer FLOPs per image.

    python benchmarks/trial_budget.py --trials 50 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from digits.errors import DigitsError, run_main
from digits.files import write_json
from digits.runtime import environment
from digits.selection import pooled_sd

RESULTS = Path("benchmarks/results/trial_budget")


def dvc(*args: str) -> str:
    """`dvc ARGS`' stdout (the dvc beside this Python first); DigitsError on failure."""
    executable = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    result = subprocess.run([executable, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise DigitsError(f"`dvc {' '.join(args)}` failed: {lines[-1]}")
    return result.stdout


def long_search(trials: int) -> dict[str, Any]:
    """metrics/tune.json of the newest finished experiment with `tuner.max_trials=trials`,
    running `dvc exp run tune --temp` first when there is none; its wall time (the whole
    command: the new trials, the re-scoring and DVC's own work) is kept in
    `RESULTS/search-TRIALS.json`."""
    found = _tune_metrics(trials)
    if found is None:
        print(f"trial_budget: dvc exp run tune --temp -S tuner.max_trials={trials}", flush=True)
        executable = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
        start = time.perf_counter()
        subprocess.run(
            [executable, "exp", "run", "tune", "--temp", "-n", f"trials-{trials}",
             "-S", f"tuner.max_trials={trials}"],
            check=True,
        )  # fmt: skip
        wall = {"command": f"dvc exp run tune --temp -S tuner.max_trials={trials}",
                "wall_seconds": round(time.perf_counter() - start, 1),
                "environment": environment()}  # fmt: skip
        write_json(RESULTS / f"search-{trials}.json", wall)
        found = _tune_metrics(trials)
    if found is None:
        raise DigitsError(f"the tuner.max_trials={trials} experiment left no metrics/tune.json")
    return found


def _tune_metrics(trials: int) -> dict[str, Any] | None:
    shown = json.loads(dvc("exp", "show", "--json", "--no-pager"))
    baseline = next(entry for entry in shown if entry.get("rev") != "workspace")
    for experiment in baseline.get("experiments") or []:
        if (experiment.get("executor") or {}).get("state") not in (None, "success"):
            continue
        for rev in experiment.get("revs") or []:
            data = rev.get("data") or {}
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
            metrics = ((data.get("metrics") or {}).get("metrics/tune.json") or {}).get("data")
            if params.get("tuner", {}).get("max_trials") == trials and metrics:
                return metrics
    return None


def trained(name: str, point: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """`benchmarks/seed_sweep.py run` of `point` with `seeds`: its result file, read back."""
    out = RESULTS / f"{name}.json"
    subprocess.run(
        [sys.executable, "benchmarks/seed_sweep.py", "run", "--name", name, "--seeds",
         *map(str, seeds), "--hyperparameters", json.dumps(point), "--out", str(out)],
        check=True,
    )  # fmt: skip
    return json.loads(out.read_text())


def decide(short: dict[str, Any], long: dict[str, Any]) -> dict[str, Any]:
    """The goal's test on best validation accuracy (see the module docstring)."""
    accuracies = [[run["best_val_accuracy"] for run in arm["runs"]] for arm in (short, long)]
    sd = pooled_sd(accuracies)
    se = sd * math.sqrt(sum(1 / len(group) for group in accuracies))
    means = [sum(group) / len(group) for group in accuracies]
    difference = means[1] - means[0]
    cheaper = long["mflops"] <= 0.9 * short["mflops"]
    return {
        "same_point": short["chosen"] == long["chosen"],
        "mean_difference_long_minus_short": round(difference, 6),
        "pooled_sd": round(sd, 6),
        "standard_error_of_difference": round(se, 6),
        "long_is_cheaper_by_10_percent": cheaper,
        "goal_met": difference > 2 * se or (difference >= -2 * se and cheaper),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    committed = json.loads(Path("metrics/tune.json").read_text())
    searched = long_search(args.trials)
    arms = {}
    for name, metrics in (("short", committed), ("long", searched)):
        runs = trained(f"trials-{metrics['trials']}", metrics["chosen"], args.seeds)
        arms[name] = {
            "trials": metrics["trials"], "chosen_trial": metrics["chosen_trial"],
            "mflops": metrics["chosen_mflops"], "chosen": metrics["chosen"],
            "trial_val_nll": metrics["chosen_val_nll"], "runs": runs["runs"],
            "best_val_accuracy": runs["best_val_accuracy"], "val_nll": runs["val_nll"],
        }  # fmt: skip
    timed = RESULTS / f"search-{args.trials}.json"
    wall = json.loads(timed.read_text()) if timed.is_file() else None
    result = {
        "seeds": args.seeds,
        **arms,
        "long_search_wall": wall,
        "decision": decide(arms["short"], arms["long"]),
        "environment": environment(),
    }
    write_json(RESULTS / "summary.json", result)
    print(json.dumps(result["decision"], indent=1))


if __name__ == "__main__":
    run_main(main)
