"""Benchmark: does a longer search pay? The default 8-trial search against
`dvc exp run -S tuner.max_trials=50`, each chosen point fully trained with several training
seeds, decided on validation.

Each step runs the way a user would, and is skipped when its result exists, so a killed run
resumes by running the same command:

1. the long search, a DVC experiment of the tune stage:
   `dvc exp run tune --temp -n trials-50 -S tuner.max_trials=50`. It resumes the committed
   search state (`models/tuner`), so only the new trials and the re-scoring run; its
   metrics/tune.json, read from `dvc exp show --json`, is kept in `search-50.json` with the
   command's wall time. Remove `benchmarks/results/trial_budget/` to start over.
2. each chosen point (the committed one from metrics/tune.json, and the long search's) trained
   with `--seeds` by `benchmarks/seed_sweep.py run` (queued `dvc exp run train` experiments
   with `train.hyperparameters` set, one at a time), into `benchmarks/results/trial_budget/`.
3. the decision: the pooled sd `s` of best validation accuracy over both points' trainings, the
   standard error of the difference of the two means `s * sqrt(1/n_short + 1/n_long)`; the
   longer search pays when its mean is above the short one's by more than 2 standard errors,
   or at most 2 below it with at least 10% fewer FLOPs per image. Student's t test's one-sided
   p-value is reported beside it: with 3 seeds a point the bar rests on 4 degrees of freedom.
4. only then, each trained model's test accuracy and NLL (the experiment's `models/model.keras`
   read from DVC's cache, scored by the evaluate stage's code), reported beside the decision
   and never used by it.

    python benchmarks/trial_budget.py --trials 50 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scipy.stats import t as student_t

from digits import runtime
from digits.dvc_cli import dvc, dvc_executable
from digits.errors import DigitsError, run_main
from digits.experiments import score_on_test
from digits.files import write_json
from digits.selection import pooled_sd

RESULTS = Path("benchmarks/results/trial_budget")


def long_search(trials: int) -> dict[str, Any]:
    """metrics/tune.json of the `tuner.max_trials=trials` search, kept with the wall time of the
    whole command (the new trials, the re-scoring and DVC's own work) in
    `RESULTS/search-TRIALS.json`. Taken from that file when it holds them, else from the newest
    finished experiment named `trials-TRIALS` on any commit, else from a new
    `dvc exp run tune --temp`. Raises DigitsError when the experiment wrote no metrics."""
    record = RESULTS / f"search-{trials}.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    if "metrics" in done:
        return done["metrics"]
    found = _tune_metrics(trials)
    if found is None:
        print(f"trial_budget: dvc exp run tune --temp -S tuner.max_trials={trials}", flush=True)
        start = time.perf_counter()
        subprocess.run(
            [dvc_executable(), "exp", "run", "tune", "--temp", "-n", f"trials-{trials}",
             "-S", f"tuner.max_trials={trials}"],
            check=True,
        )  # fmt: skip
        done = {"command": f"dvc exp run tune --temp -S tuner.max_trials={trials}",
                "wall_seconds": round(time.perf_counter() - start, 1),
                "environment": runtime.environment()}  # fmt: skip
        found = _tune_metrics(trials)
    if found is None:
        raise DigitsError(f"the tuner.max_trials={trials} experiment left no metrics/tune.json")
    write_json(record, {**done, "metrics": found})
    return found


def _tune_metrics(trials: int) -> dict[str, Any] | None:
    """metrics/tune.json of the newest finished experiment named `trials-TRIALS` with
    `tuner.max_trials=TRIALS`, on any commit (`dvc exp show --all-commits`), or None."""
    shown = json.loads(dvc("exp", "show", "--json", "--all-commits", "--no-pager"))
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state")
            if experiment.get("name") != f"trials-{trials}" or state not in (None, "success"):
                continue
            for rev in experiment.get("revs") or []:
                data = rev.get("data") or {}
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = ((data.get("metrics") or {}).get("metrics/tune.json") or {}).get("data")
                if params.get("tuner", {}).get("max_trials") == trials and metrics:
                    return metrics
    return None


def trained(name: str, point: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """`benchmarks/seed_sweep.py run` of `point` with `seeds`: its result file, read back. A
    result file of this point and these seeds is taken as it is, so the step survives a commit
    (seed_sweep.py looks only at HEAD's experiments)."""
    out = RESULTS / f"{name}.json"
    if out.is_file():
        done = json.loads(out.read_text())
        points = [run["params"].get("train.hyperparameters") for run in done["runs"]]
        if done["seeds"] == seeds and all(found == point for found in points):
            return done
    subprocess.run(
        [sys.executable, "benchmarks/seed_sweep.py", "run", "--name", name, "--seeds",
         *map(str, seeds), "--hyperparameters", json.dumps(point), "--out", str(out)],
        check=True,
    )  # fmt: skip
    return json.loads(out.read_text())


def difference(short: list[float], long: list[float]) -> dict[str, float]:
    """Long mean minus short mean, the pooled sd `s` of both groups (`digits.selection.pooled_sd`),
    the standard error of the difference `s * sqrt(1/n_short + 1/n_long)`, their ratio, its
    degrees of freedom `n_short + n_long - 2` and the one-sided p-value of Student's t test for
    equal variances (`scipy.stats.t`): how likely a difference this large is when the two points
    train equally well. Needs 2 or more values in a group."""
    sd = pooled_sd([short, long])
    if sd is None:
        raise DigitsError("a difference needs 2 or more seeds for a point: pass --seeds 1 2 3")
    se = sd * math.sqrt(1 / len(short) + 1 / len(long))
    mean_difference = statistics.mean(long) - statistics.mean(short)
    freedom = len(short) + len(long) - 2
    return {
        "mean_difference_long_minus_short": round(mean_difference, 6),
        "pooled_sd": round(sd, 6),
        "standard_error_of_difference": round(se, 6),
        "standard_errors": round(mean_difference / se, 2),
        "degrees_of_freedom": freedom,
        "one_sided_p": round(float(student_t.sf(mean_difference / se, freedom)), 4),
    }


def decide(short: dict[str, Any], long: dict[str, Any]) -> dict[str, Any]:
    """The goal's test on best validation accuracy (see the module docstring)."""
    found = difference(
        *[[run["best_val_accuracy"] for run in arm["runs"]] for arm in (short, long)]
    )
    bar = 2 * found["standard_error_of_difference"]
    above = found["mean_difference_long_minus_short"]
    cheaper = long["mflops"] <= 0.9 * short["mflops"]
    return {
        "same_point": short["chosen"] == long["chosen"],
        **found,
        "long_is_cheaper_by_10_percent": cheaper,
        "goal_met": above > bar or (above >= -bar and cheaper),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        parser.error("--seeds needs 2 or more different seeds: the decision pools their spread")
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
    decision = decide(arms["short"], arms["long"])
    tested = {name: score_on_test(arm["runs"]) for name, arm in arms.items()}
    tested["difference"] = difference(
        *[[run["test_accuracy"] for run in tested[name]["runs"]] for name in ("short", "long")]
    )
    result = {
        "seeds": args.seeds,
        **arms,
        "long_search_wall": wall,
        "decision": decision,
        "test_after_decision": tested,
        "environment": runtime.environment(),
    }
    write_json(RESULTS / "summary.json", result)
    print(json.dumps(result["decision"], indent=1))


if __name__ == "__main__":
    run_main(main)
