"""Benchmark: a training recipe over several seeds, run as DVC experiments.

Each seed is one experiment of the `train` stage, queued the way a user queues it by hand:

    dvc exp run train --queue -n NAME-seedS -S train.seed=S [-S train.KEY=VALUE ...]

then run one at a time (`dvc queue start -j 1`: two trainings at once would share the 2 cores
and change each other's timings) with the committed `runtime.threads`. The `train` target stops
before evaluate, so the test set is never scored while a recipe is being decided. Like any
`dvc exp run train`, an experiment that changes a param the tune stage reads (epochs, batch
size, warm-up, label smoothing, augmentation: a trial trains the recipe compressed) searches
again first and trains the point that search chooses; `train.hyperparameters` fixes the
architecture instead (the search still runs, since its params changed). The summary
reads `dvc exp show --json` and writes, per experiment, its name and rev, the params that differ
from the baseline commit, best_val_accuracy, val_nll (after temperature scaling), temperature,
training seconds, epochs run, parameter count, thread count and environment as
metrics/train.json records them; then mean, sd, min and max of the four figures over the seeds,
the recipe (`train` params but the seed), the architecture each seed trained (and the
sweep's, when they agree), and the environment
(`digits.runtime.environment`) of the machine that summarised. `--test` adds each model's test
accuracy and NLL (`test_after_decision`, `digits.experiments.score_on_test`): a figure to report
once a recipe is decided, never one to decide with. The models stay in DVC's cache, where
`benchmarks/ensemble.py`, `test_time_augmentation.py` and `mnist_c.py --arms` read them.

Usage, from the repository root with the pipeline's outputs in place (`dvc repro` first):

    python benchmarks/seed_sweep.py run --name smooth0 --seeds 42 1 2 \
        -S train.label_smoothing=0 --out benchmarks/results/seed_sweep_smooth0.json
    python benchmarks/seed_sweep.py run --name wide --seeds 42 1 \
        -S 'train.hyperparameters={conv_blocks: 3, convs_per_block: 1, base_filters: 32, ...}' \
        --out benchmarks/results/seed_sweep_wide.json
    python benchmarks/seed_sweep.py summarise --seeds 42 1 2 -S train.label_smoothing=0 \
        --out benchmarks/results/seed_sweep_smooth0.json

`-S` takes DVC's own syntax (Hydra's: a mapping is `{key: value, ...}` with bare keys) and
only `train.*` keys other than `train.seed` (the seeds are `--seeds`). A sweep is defined by
its seeds and `-S` values, not its name: an experiment of the current commit whose params
already match (queued, running or done) is not queued again, so a killed sweep resumes by
running the same command, and `summarise` finds the experiments by their params. The
experiments stay in the repository: `dvc exp show`, `dvc exp diff`, `dvc exp apply NAME-seedS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import dvc.api as dvc_api

from digits.dvc_cli import dvc, dvc_executable
from digits.errors import DigitsError, run_main
from digits.experiments import score_on_test
from digits.files import write_json
from digits.params import PARAMS_FILE, Params, parse_params
from digits.runtime import environment
from digits.spread import spread

# The result file's name for each figure of metrics/train.json the summary reports.
FIGURES = {
    "best_val_accuracy": "best_val_accuracy",
    "val_nll": "val_nll",
    "temperature": "temperature",
    "training_seconds": "seconds",
}
DONE, WAITING = {"success"}, {"queued", "running"}
POLL_SECONDS = 5
# Polls in a row with experiments queued, none running and no worker before a new worker is
# started: a worker just started is not listed for a while, and two would train at once.
STALLED_POLLS = 24
TUNED_POINT = "models/best_hyperparameters.json"  # what train trains when hyperparameters: null


def expected_params(sets: list[str], seed: int) -> Params:
    """params.yaml as `dvc exp run -S train.seed=SEED -S SETS...` would write it (DVC's own
    override code on a copy), validated: a bad -S fails here, before anything is queued."""
    from dvc.utils.hydra import apply_overrides  # DVC's -S, so the values parse as it parses

    for pair in sets:
        key = pair.partition("=")[0]
        if not key.startswith("train.") or key == "train.seed" or "=" not in pair:
            raise DigitsError(
                f"-S {pair!r}: a sweep sets train.KEY=VALUE only (not train.seed: use --seeds)"
            )
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "params.yaml"
        shutil.copyfile(PARAMS_FILE, copy)
        try:
            apply_overrides(copy, [f"train.seed={seed}", *sets])
        except Exception as error:  # DVC raises its own types for Hydra's parse errors
            raise DigitsError(f"-S {' '.join(sets)}: DVC cannot apply it ({error})") from None
        from digits.params import load_params

        return load_params(copy)


def experiments() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The baseline commit's params and its experiments, from `dvc exp show --json`: each with
    `name`, `rev`, `state` (success, queued, running, failed), `timestamp`, `params` (the whole
    params.yaml) and `metrics` (metrics/train.json)."""
    shown = json.loads(dvc("exp", "show", "--json", "--no-pager"))
    baseline = next(entry for entry in shown if entry.get("rev") != "workspace")
    found = []
    for experiment in baseline.get("experiments") or []:
        state = (experiment.get("executor") or {}).get("state") or "success"
        for rev in experiment.get("revs") or []:
            data = rev.get("data") or {}
            found.append(
                {
                    "name": experiment.get("name") or rev.get("name") or rev.get("rev"),
                    "rev": rev.get("rev"),
                    "state": state,
                    "timestamp": data.get("timestamp") or "",
                    "params": _data(data, "params", "params.yaml"),
                    "metrics": _data(data, "metrics", "metrics/train.json"),
                }
            )
    return _data(baseline.get("data") or {}, "params", "params.yaml"), found


def _data(data: dict[str, Any], kind: str, file: str) -> dict[str, Any]:
    return ((data.get(kind) or {}).get(file) or {}).get("data") or {}


def matching(params: Params, found: list[dict[str, Any]], states: set[str]) -> list[dict]:
    """The experiments in `states` whose runtime and train params equal `params`', newest
    first (values compared as parsed, so `1e-3` and `0.001` match)."""
    matches = []
    for experiment in found:
        if experiment["state"] not in states or not experiment["params"]:
            continue
        try:
            theirs = parse_params(experiment["params"], experiment["name"])
        except DigitsError:
            continue  # params of an older layout: not this sweep's
        if (theirs.train, theirs.runtime) == (params.train, params.runtime):
            matches.append(experiment)
    return sorted(matches, key=lambda experiment: experiment["timestamp"], reverse=True)


def queue(name: str, seeds: list[int], sets: list[str]) -> list[str]:
    """Queue one `train` experiment per seed with no matching experiment yet; the names of the
    sweep's experiments now queued or running (a resumed sweep's included)."""
    _, found = experiments()
    taken = {experiment["name"] for experiment in found}
    queued = []
    for seed in seeds:
        params = expected_params(sets, seed)
        if matching(params, found, DONE):
            print(f"seed_sweep: seed {seed}: done already")
            continue
        waiting = matching(params, found, WAITING)
        if waiting:
            queued.append(waiting[0]["name"])
            print(f"seed_sweep: seed {seed}: {waiting[0]['state']} already ({queued[-1]})")
            continue
        label = f"{name}-seed{seed}"
        if label in taken:
            raise DigitsError(
                f"experiment {label} exists with other params: choose another --name, or "
                f"remove it (`dvc exp remove {label}`, or `dvc queue remove {label}` if failed)"
            )
        options = [item for pair in [f"train.seed={seed}", *sets] for item in ("-S", pair)]
        dvc("exp", "run", "train", "--queue", "-n", label, *options)
        queued.append(label)
        print(f"seed_sweep: queued {label}")
    return queued


def start_worker(log: Path) -> None:
    """`dvc queue start -j 1`: one worker daemon, its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as stream:
        started = subprocess.run(
            [dvc_executable(), "queue", "start", "-j", "1"],
            stdout=stream, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if started.returncode != 0:
        raise DigitsError(f"`dvc queue start -j 1` failed: see {log}")


def queue_status(attempts: int = 5) -> str:
    """`dvc queue status`, asked again up to `attempts` times a poll apart when it fails: it
    reads the task results the workers write, and fails now and then on one half-written."""
    for _ in range(attempts - 1):
        try:
            return dvc("queue", "status")
        except DigitsError:
            time.sleep(POLL_SECONDS)
    return dvc("queue", "status")


def workers(status: str) -> int:
    """The queue workers, active or idle, that `dvc queue status` output reports."""
    found = re.search(r"Worker status: (\d+) active, (\d+) idle", status)
    return int(found[1]) + int(found[2]) if found else 0


def run_queue(log: Path) -> None:
    """Start a queue worker unless one is running, then wait until nothing is queued or
    running. A worker can stop while experiments are still queued; when `STALLED_POLLS` polls
    in a row (2 minutes) find queued experiments, none running and no worker, a new one is
    started. `dvc queue stop` ends the daemon after, since one can miss its empty-queue
    shutdown."""
    if not workers(queue_status()):
        start_worker(log)
    idle_polls = 0
    try:
        while True:
            status = queue_status()
            if "Queued" not in status and "Running" not in status:
                return
            stalled = "Running" not in status and not workers(status)
            idle_polls = idle_polls + 1 if stalled else 0
            if idle_polls >= STALLED_POLLS:
                print("seed_sweep: experiments queued and no worker: starting one", flush=True)
                start_worker(log)
                idle_polls = 0
            time.sleep(POLL_SECONDS)
    finally:
        dvc("queue", "stop")


def differing(baseline: dict[str, Any], params: dict[str, Any], prefix: str = "") -> dict:
    """The dotted keys whose value in `params` differs from `baseline`'s, with `params`' value
    (a mapping that replaces null is one key)."""
    changed = {}
    for key in sorted(set(baseline) | set(params)):
        old, new = baseline.get(key), params.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed |= differing(old, new, f"{prefix}{key}.")
        elif old != new:
            changed[f"{prefix}{key}"] = new
    return changed


def run_record(baseline: dict[str, Any], experiment: dict[str, Any]) -> dict[str, Any]:
    """One experiment of a sweep as the result file lists it (see the module docstring)."""
    metrics = experiment["metrics"]
    return {
        "name": experiment["name"],
        "rev": experiment["rev"],
        "params": differing(baseline, experiment["params"]),
        **{figure: metrics.get(key) for figure, key in FIGURES.items()},
        "epochs_run": metrics.get("epochs_run"),
        "parameters": metrics.get("parameters"),
        "threads": metrics.get("threads"),
        "environment": metrics.get("environment"),
    }


def trained_point(params: Params, rev: str) -> dict[str, Any]:
    """The architecture the experiment `rev` trained: `train.hyperparameters`, or when that is
    null the tuned point its `models/best_hyperparameters.json` held (read through DVC): a
    sweep that changes a param the tune stage reads searched again before training. Raises
    DigitsError when DVC cannot read that file."""
    if params.train.hyperparameters is not None:
        return dataclasses.asdict(params.train.hyperparameters)
    try:
        return json.loads(dvc_api.read(TUNED_POINT, rev=rev))
    except Exception as error:  # dvc raises several kinds for a missing rev or cache entry
        raise DigitsError(
            f"experiment {rev[:7]}: cannot read its {TUNED_POINT} ({error})"
        ) from None


def summarise(seeds: list[int], sets: list[str]) -> dict[str, Any]:
    """The sweep's result: each seed's newest finished experiment with these params, the
    spread of each figure over them, the recipe (the train params but the seed) and the
    architecture trained. Raises `DigitsError` naming the seeds without an experiment."""
    baseline, found = experiments()
    runs, missing = [], []
    for seed in seeds:
        done = matching(expected_params(sets, seed), found, DONE)
        if done and done[0]["metrics"]:
            params = expected_params(sets, seed)
            runs.append(
                {**run_record(baseline, done[0]),
                 "hyperparameters": trained_point(params, done[0]["rev"])}
            )  # fmt: skip
        else:
            missing.append(seed)
    if missing:
        raise DigitsError(
            f"no finished experiment for seeds {missing} with -S {sets}: run "
            "`python benchmarks/seed_sweep.py run` with the same --seeds and -S (failed ones: "
            "`dvc queue logs NAME`)"
        )
    recipe = dataclasses.asdict(expected_params(sets, seeds[0]).train)
    del recipe["seed"], recipe["hyperparameters"]
    points = {json.dumps(run["hyperparameters"], sort_keys=True) for run in runs}
    return {
        "seeds": seeds,
        "set": sets,
        **{figure: spread([run[figure] for run in runs]) for figure in FIGURES},
        "train": recipe,
        # The architecture every seed trained; null when they differ (see each run's).
        "hyperparameters": runs[0]["hyperparameters"] if len(points) == 1 else None,
        "environment": environment(),
        "runs": runs,
    }


def hydra_mapping(point: dict[str, Any]) -> str:
    """`point` in the `-S` syntax DVC takes for a mapping: `{key: value, ...}`."""

    def shown(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else repr(value)

    return "{" + ", ".join(f"{key}: {shown(value)}" for key, value in point.items()) + "}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "summarise"])
    parser.add_argument("--name", default="sweep", help="experiments are named NAME-seedS")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("-S", "--set", dest="sets", action="append", default=[])
    parser.add_argument(
        "--hyperparameters", type=json.loads, help="a JSON point: -S train.hyperparameters={...}"
    )
    parser.add_argument("--out", type=Path, help="the result file (JSON); printed either way")
    parser.add_argument(
        "--test", action="store_true",
        help="also score each model on the test split (test_after_decision): for reporting a "
        "recipe already decided on validation, never for choosing one",
    )  # fmt: skip
    parser.add_argument("--log", type=Path, default=Path("benchmarks/work/seed_sweep/queue.log"))
    args = parser.parse_args()
    if args.hyperparameters is not None:
        args.sets.append(f"train.hyperparameters={hydra_mapping(args.hyperparameters)}")
    for seed in args.seeds:
        expected_params(args.sets, seed)  # every -S checked before anything is queued
    if args.action == "run" and queue(args.name, args.seeds, args.sets):
        run_queue(args.log)
    result = summarise(args.seeds, args.sets)
    if args.test:
        result["test_after_decision"] = score_on_test(result["runs"])
    if args.out:
        write_json(args.out, result)
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}, indent=2))


if __name__ == "__main__":
    run_main(main)
