"""Benchmark: is Bayesian optimization worth its trials? Keras Tuner's BayesianOptimization
against RandomSearch on the default objective, space and FLOPs cap, over several search seeds.

For each search seed (`tuner.seed` replaced, so the trial training seeds change too) it runs
`--trials` trials of both algorithms in scratch folders, so the pipeline's own search is
untouched, and reports the best trial score (validation NLL after a compressed training, lower
is better) reached by each trial count in `--budgets`: mean, sd, min and max over the seeds,
and Bayesian minus random per seed. With one seed both algorithms draw the same first
`tuner.num_initial_points` trials (the same random draws under the same cap), so the comparison
is paired and differs only where the Gaussian process starts proposing. Winners are not fully
trained: `benchmarks/proxy_noise_fidelity.py` measures what a trial score is worth.

Searches live in `--work` (default `benchmarks/work/search_vs_random/`, ignored by Git): a
killed run resumes where it stopped.

    python benchmarks/search_vs_random.py --out benchmarks/results/search_vs_random_nll.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from digits import runtime
from digits.data import Split, load_split
from digits.errors import run_main
from digits.files import write_json
from digits.params import Params, load_params
from digits.plots import save_figure
from digits.search import OBJECTIVE, Search, TrialRecord, run_trials
from digits.spread import spread

ALGORITHMS = ("bayesian", "random")
LABELS = {"bayesian": "BayesianOptimization", "random": "RandomSearch"}
RESULT = Path("benchmarks/results/search_vs_random_nll.json")


def search(
    params: Params, algorithm: str, seed: int, trials: int, splits: dict[str, Split], work: Path
) -> list[TrialRecord]:
    """Run (or resume) one search in its own folder; its trials in order."""
    tuner = dataclasses.replace(
        params.tuner, seed=seed, max_trials=trials, workers=0, trials_per_process=None
    )
    state = work / algorithm
    found = Search.for_params(
        tuner, params.train, splits["train"], splits["val"], state, params.runtime.threads
    )
    if len(found.completed()) < found.planned_trials:
        print(f"search_vs_random: {algorithm} search, seed {seed}: {trials} trials", flush=True)
        run_trials(found.tuner(algorithm=algorithm))
    return found.completed()


def draw(searches: list[dict[str, Any]], out: Path) -> None:
    """Best score so far against trial count: one thin line per search, the mean thick."""
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for algorithm, colour in zip(ALGORITHMS, ("tab:blue", "tab:orange"), strict=True):
        curves = [s["best_so_far"] for s in searches if s["algorithm"] == algorithm]
        if not curves:  # drawn after every search: the first drawing has no random search yet
            continue
        for curve in curves:
            axes.step(range(1, len(curve) + 1), curve, where="post", color=colour, alpha=0.3)
        shortest = min(len(curve) for curve in curves)
        mean = [statistics.mean(curve[k] for curve in curves) for k in range(shortest)]
        axes.step(range(1, shortest + 1), mean, where="post", color=colour, lw=2.5,
                  label=LABELS[algorithm])  # fmt: skip
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_yscale("log")
    axes.set_xlabel("trials")
    axes.set_ylabel(f"best trial {OBJECTIVE} so far (lower is better)")
    seeds = len({s["seed"] for s in searches})
    axes.set_title(f"Best trial score by trial count ({seeds} search seeds; thick: mean)")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3, which="both")
    save_figure(figure, out)


def summarise(searches: list[dict[str, Any]], budgets: list[int], seeds: list[int]) -> dict:
    """Per algorithm and budget, the spread of the best score over seeds, and the paired
    Bayesian-minus-random difference per seed (negative: Bayesian found a lower NLL)."""
    by = {(s["algorithm"], s["seed"]): s for s in searches}
    best = {
        algorithm: {
            str(n): spread([by[algorithm, seed]["best_by_budget"][str(n)] for seed in seeds])
            for n in budgets
        }
        for algorithm in ALGORITHMS
    }
    paired = {
        str(n): [
            round(by["bayesian", s]["best_by_budget"][str(n)]
                  - by["random", s]["best_by_budget"][str(n)], 6)
            for s in seeds
        ]
        for n in budgets
    }  # fmt: skip
    return {"best_score": best, "bayesian_minus_random_by_seed": paired}


def record(algorithm: str, seed: int, records: list[TrialRecord], budgets: list[int]) -> dict:
    """One search's entry in the result file: its best score by budget and every trial."""
    return {
        "algorithm": algorithm,
        "seed": seed,
        "training_seconds": round(sum(r.seconds for r in records), 1),
        "best_by_budget": {str(n): min(r.score for r in records[:n]) for n in budgets},
        "best_so_far": [r.best_so_far for r in records],
        "trials": [
            {"trial": r.trial, "score": r.score, "mflops": r.mflops, **r.hyperparameters}
            for r in records
        ],
    }


def run(args: argparse.Namespace, params: Params, splits: dict[str, Split]) -> dict[str, Any]:
    """Every search in turn; the result file and figure are rewritten after each one."""
    searches: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    for seed in args.seeds:
        for algorithm in ALGORITHMS:
            records = search(
                params, algorithm, seed, args.trials, splits, args.work / f"seed-{seed}"
            )
            searches.append(record(algorithm, seed, records, args.budgets))
            done = sorted({s["seed"] for s in searches if s["algorithm"] == "random"})
            tuner = {
                **dataclasses.asdict(params.tuner),
                "seed": "varies",
                "max_trials": args.trials,
            }
            result = {
                "summary": summarise(searches, args.budgets, done) if done else None,
                "objective": OBJECTIVE,
                "seeds_done": done,
                "tuner": tuner,
                "environment": runtime.environment(),
                "searches": searches,
            }
            write_json(args.out, json.loads(json.dumps(result, default=str)))
            draw(searches, args.out.with_suffix(".png"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 12, 20])
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/search_vs_random"))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if 0 in args.seeds:
        # Keras Tuner replaces a seed of 0 by a random one (`seed or random.randint(...)`).
        parser.error("--seeds: 0 is not a usable Keras Tuner seed; pick another")
    params = load_params()
    runtime.configure(params.tuner.seed, params.runtime.threads)
    splits = {name: load_split(args.data / f"{name}.npz") for name in ("train", "val")}
    result = run(args, params, splits)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    run_main(main)
