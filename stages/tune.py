"""Stage tune: Bayesian search over tuner.space -> the best hyperparameters, metrics and plots.

With `tuner.workers` > 0, or `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` set (workers on other
machines join there; a loopback or private address unless `tuner.allow_public_oracle`), the
search runs as Keras Tuner's chief/worker cluster. With `KERASTUNER_TUNER_ID` set, this command
is one chief or worker of such a search (see `digits.processes`): it runs trials and writes no
outputs.
"""

import argparse
import os
import sys
from pathlib import Path

from digits import oracle, runtime
from digits.data import load_split
from digits.errors import run_main
from digits.files import write_csv, write_json
from digits.importance import importances, searched_dimensions
from digits.model import SELECTION_METRIC
from digits.params import RuntimeParams, TunerParams, confirm_unchanged, load_section
from digits.plots import importance_bars, marginals, tuning_progress
from digits.processes import run_cluster, run_in_chunks, wait_for_chief
from digits.search import (
    Search,
    best_trial,
    describe,
    mark_in_use,
    prune_searches,
    run_trials,
    seed_noise,
    summary_metrics,
    trial_table,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="prepared training split")
    parser.add_argument("--val", type=Path, required=True, help="prepared validation split")
    parser.add_argument("--state", type=Path, required=True, help="search state (resumable)")
    parser.add_argument("--best", type=Path, required=True, help="best hyperparameters (JSON)")
    parser.add_argument("--metrics", type=Path, required=True, help="search metrics (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="trials table and figures")
    args = parser.parse_args()

    runtime_params, params = load_section(RuntimeParams), load_section(TunerParams)
    role = oracle.role()
    address = oracle.oracle_address()
    if address:  # the chief's: where a chief serves, or the one a worker joins
        oracle.check_oracle_address(address[0], params.allow_public_oracle, role == "worker")
    if not role:  # Keras Tuner reads these itself; only the chief and workers may see them
        for name in (oracle.ORACLE_IP, oracle.ORACLE_PORT):
            os.environ.pop(name, None)
    runtime.configure(params.seed, runtime_params.threads)
    search = Search.for_params(
        params, load_split(args.train), load_split(args.val), args.state,
        runtime_params.threads,
    )  # fmt: skip
    if role == "worker":
        wait_for_chief(*address)
    if role:
        run_trials(search.tuner())
        return

    mark_in_use(search)
    done = describe(search, print)
    if done < search.planned_trials:
        if params.workers or address:
            run_cluster(search, [sys.executable, *sys.argv], address)
        elif params.trials_per_process:
            run_in_chunks(search, runtime_params.threads)
        else:
            run_trials(search.tuner())
    records = search.completed()
    best = best_trial(records)
    noise = seed_noise(search, best, print)
    prune_searches(search, print)

    rows = trial_table(records)
    mattered = importances(rows, params.space)
    metrics = {**summary_metrics(records, noise), "importance": mattered}
    confirm_unchanged(runtime_params, params, stage="tune")
    write_json(args.best, best.hyperparameters)
    write_json(args.metrics, metrics)
    write_csv(args.plots / "trials.csv", rows)
    tuning_progress(rows, metrics["seed_sd"], args.plots / "progress.png", SELECTION_METRIC)
    searched = searched_dimensions(params.space)
    log_scale = {d.name for d in params.space.dimensions if d.sampling == "log"}
    marginals(rows, searched, log_scale, args.plots / "marginals.png", SELECTION_METRIC)
    importance_bars(mattered, len(rows), args.plots / "importance.png")
    print(
        f"tune: best {SELECTION_METRIC} {best.score:.4f} (seed sd {metrics['seed_sd']}) "
        f"with {best.hyperparameters}"
    )


if __name__ == "__main__":
    run_main(main)
