"""Stage tune: Bayesian search over tuner.space -> the chosen hyperparameters, metrics and plots.

Each trial trains the train section's recipe on a compressed schedule and scores the validation
NLL; the best trials are then re-scored with other seeds, and `tuner.selection` picks the point
training gets (one_se: the fewest FLOPs within one standard error of the best score).

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
from digits.params import (
    RuntimeParams,
    TrainParams,
    TunerParams,
    confirm_unchanged,
    load_section,
)
from digits.plots import importance_bars, marginals, tuning_progress
from digits.processes import run_cluster, run_in_chunks, wait_for_chief
from digits.search import (
    OBJECTIVE,
    Search,
    TrialRecord,
    choose,
    describe,
    mark_in_use,
    prune_searches,
    rescore,
    run_trials,
    summary_metrics,
    trial_table,
)
from digits.selection import Decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="prepared training split")
    parser.add_argument("--val", type=Path, required=True, help="prepared validation split")
    parser.add_argument("--state", type=Path, required=True, help="search state (resumable)")
    parser.add_argument("--best", type=Path, required=True, help="chosen hyperparameters (JSON)")
    parser.add_argument("--metrics", type=Path, required=True, help="search metrics (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="trials table and figures")
    args = parser.parse_args()

    runtime_params, params = load_section(RuntimeParams), load_section(TunerParams)
    recipe = load_section(TrainParams)
    role = oracle.role()
    address = oracle.oracle_address()
    if address:  # the chief's: where a chief serves, or the one a worker joins
        oracle.check_oracle_address(address[0], params.allow_public_oracle, role == "worker")
    if not role:  # Keras Tuner reads these itself; only the chief and workers may see them
        for name in (oracle.ORACLE_IP, oracle.ORACLE_PORT):
            os.environ.pop(name, None)
    runtime.configure(params.seed, runtime_params.threads)
    search = Search.for_params(
        params, recipe, load_split(args.train), load_split(args.val), args.state,
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
    rescores = rescore(search, records, print)
    decision = choose(records, rescores, params.selection)
    prune_searches(search, print)
    confirm_unchanged(runtime_params, params, recipe, stage="tune")
    write_outputs(args, params, records, rescores, decision)


def write_outputs(
    args: argparse.Namespace,
    params: TunerParams,
    records: list[TrialRecord],
    rescores: dict[int, list[float]],
    decision: Decision,
) -> None:
    """The chosen point, the metrics, the trials table and the search's figures."""
    rows = trial_table(records)
    mattered = importances(rows, params.space)
    metrics = {**summary_metrics(records, rescores, decision), "importance": mattered}
    write_json(args.best, metrics["chosen"])
    write_json(args.metrics, metrics)
    write_csv(args.plots / "trials.csv", rows)
    tuning_progress(rows, decision, args.plots / "progress.png", OBJECTIVE)
    searched = searched_dimensions(params.space)
    log_scale = {d.name for d in params.space.dimensions if d.sampling == "log"}
    marginals(rows, searched, log_scale, args.plots / "marginals.png", OBJECTIVE)
    importance_bars(mattered, len(rows), args.plots / "importance.png")
    print(
        f"tune: chose trial {decision.chosen.trial} ({OBJECTIVE} {decision.chosen.score:.4f}, "
        f"{metrics['chosen_mflops']:.2f} MFLOPs/image; best trial {decision.best.trial}: "
        f"{decision.best.score:.4f}, {metrics['best_mflops']:.2f} MFLOPs/image; standard error "
        f"{metrics['standard_error']}) by {params.selection}: {metrics['chosen']}"
    )


if __name__ == "__main__":
    run_main(main)
