"""Benchmark: is Bayesian optimization worth its trials? Keras Tuner's BayesianOptimization
against RandomSearch on the default space, at the same trial counts, over several search seeds.

For each search seed (`tuner.seed` replaced, so the trial subset and the trial training seeds
change too) it runs `--trials` trials of both algorithms, in scratch folders so the pipeline's own
search is untouched, and reports the best proxy score reached by each trial count in `--budgets`
(mean, sd, min, max over seeds). With one seed both algorithms draw the same first
`tuner.num_initial_points` trials (Keras Tuner's random draws follow the saved seed state), so
the comparison is paired and differs only where the Gaussian process starts proposing.

The proxy score is what the search optimizes, not what users get, so the winner of each search
at each budget in `--train-budgets` is then trained with the default recipe (params.yaml `train`,
one training seed for all, identical winners trained once) and scored on the test set.

Everything is kept in `--work` (default `benchmarks/work/`, ignored by Git): a killed run resumes
its searches and trainings where they stopped, so the benchmark can be spread over sessions.

    python benchmarks/search_vs_random.py --out benchmarks/results/search_vs_random.json
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
from digits.hyperparameters import Hyperparameters
from digits.params import Params, load_params
from digits.plots import save_figure
from digits.search import Search, TrialRecord, best_trial, run_trials
from digits.spread import spread
from digits.training import best_model, train_model
from digits.winners import RESULT, WORK, winner_training

ALGORITHMS = ("bayesian", "random")


def search(
    params: Params, algorithm: str, seed: int, trials: int, splits: dict[str, Split], work: Path
) -> list[TrialRecord]:
    """Run (or resume) one search; its trials in order."""
    tuner = dataclasses.replace(params.tuner, seed=seed, max_trials=trials, workers=0)
    state = work / "searches" / algorithm
    found = Search.for_params(tuner, splits["train"], splits["val"], state, params.runtime.threads)
    if len(found.completed()) < found.planned_trials:
        print(f"search_vs_random: {algorithm} search, seed {seed}: {trials} trials", flush=True)
        run_trials(found.tuner(algorithm=algorithm))
    return found.completed()


def test_accuracy(
    params: Params, hyperparameters: dict[str, Any], splits: dict[str, Split], work: Path
) -> dict[str, float]:
    """Train `hyperparameters` with the default recipe (resuming a killed run); test accuracy."""
    model, run = winner_training(params, Hyperparameters.from_dict(hyperparameters), splits, work)
    result = train_model(model, params.train, splits["train"], splits["val"], run)
    test = splits["test"]
    predicted = best_model(run).predict(test.images, batch_size=1000, verbose=0).argmax(axis=1)
    return {
        "test_accuracy": float((predicted == test.labels).mean()),
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
    }


def draw(searches: list[dict[str, Any]], budgets: list[int], out: Path) -> None:
    """Best score so far against trial count: one thin line per search, the mean thick."""
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for algorithm, colour in zip(ALGORITHMS, ("tab:blue", "tab:orange"), strict=True):
        curves = [s["best_so_far"] for s in searches if s["algorithm"] == algorithm]
        for curve in curves:
            axes.step(range(1, len(curve) + 1), curve, where="post", color=colour, alpha=0.3)
        shortest = min(len(curve) for curve in curves)  # a failed trial leaves a search shorter
        mean = [statistics.mean(curve[k] for curve in curves) for k in range(shortest)]
        label = {"bayesian": "BayesianOptimization", "random": "RandomSearch"}[algorithm]
        axes.step(range(1, len(mean) + 1), mean, where="post", color=colour, lw=2.5, label=label)
    for budget in budgets:
        axes.axvline(budget, color="grey", linestyle=":", linewidth=1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trials")
    axes.set_ylabel("best proxy val_accuracy so far")
    axes.set_title(f"Best proxy score by trial count ({len(curves)} search seeds; thick: mean)")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    save_figure(figure, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--train-budgets", type=int, nargs="*", default=[20])
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if 0 in args.seeds:
        # Keras Tuner replaces a seed of 0 by a random one (`seed or random.randint(...)`).
        parser.error("--seeds: 0 is not a usable Keras Tuner seed; pick another")

    params = load_params()
    runtime.configure(params.tuner.seed, params.runtime.threads)
    splits = {name: load_split(args.data / f"{name}.npz") for name in ("train", "val", "test")}
    trials = max(args.budgets)
    searches = []
    for seed in args.seeds:
        for algorithm in ALGORITHMS:
            records = search(params, algorithm, seed, trials, splits, args.work)
            searches.append(
                {
                    "algorithm": algorithm,
                    "seed": seed,
                    "training_seconds": round(sum(record.seconds for record in records), 1),
                    "best_by_budget": {str(n): best_trial(records[:n]).score for n in args.budgets},
                    "best_so_far": [record.best_so_far for record in records],
                    "winners": {
                        str(n): best_trial(records[:n]).hyperparameters for n in args.train_budgets
                    },
                    "trials": [
                        {"trial": r.trial, "score": r.score, **r.hyperparameters} for r in records
                    ],
                }
            )
    context = {
        "seeds": args.seeds,
        "tuner": {**dataclasses.asdict(params.tuner), "seed": "varies", "max_trials": trials},
        "train": dataclasses.asdict(params.train),
        "environment": runtime.environment(),
    }
    for entry in searches:
        entry["test_of_winner"] = {}
    write_result(searches, args, context)  # the searches' part first: the trainings take hours
    for entry in searches:
        for budget, winner in entry["winners"].items():
            print(f"search_vs_random: training the {entry['algorithm']} winner of seed "
                  f"{entry['seed']} at {budget} trials", flush=True)  # fmt: skip
            entry["test_of_winner"][budget] = test_accuracy(params, winner, splits, args.work)
            write_result(searches, args, context)


def write_result(searches: list[dict[str, Any]], args: argparse.Namespace, context: dict) -> None:
    """Write the result file and figure from what has run so far: a test-accuracy summary
    appears once the winners of every search at that budget are trained."""
    by_seed = {(s["algorithm"], s["seed"]): s for s in searches}
    trained = [
        str(n) for n in args.train_budgets if all(str(n) in s["test_of_winner"] for s in searches)
    ]
    summary: dict[str, Any] = {"best_proxy_score": {}, "test_accuracy_of_winner": {}}
    for algorithm in ALGORITHMS:
        mine = [s for s in searches if s["algorithm"] == algorithm]
        summary["best_proxy_score"][algorithm] = {
            str(n): spread([s["best_by_budget"][str(n)] for s in mine]) for n in args.budgets
        }
        summary["test_accuracy_of_winner"][algorithm] = {
            n: spread([s["test_of_winner"][n]["test_accuracy"] for s in mine]) for n in trained
        }

    def paired(figure: Any, budgets: list[str]) -> dict[str, list[float]]:
        """Bayesian minus random, per search seed, at each budget."""
        return {
            n: [
                round(figure(by_seed["bayesian", seed], n) - figure(by_seed["random", seed], n), 6)
                for seed in args.seeds
            ]
            for n in budgets
        }

    differences = {
        "best_proxy_score": paired(
            lambda s, n: s["best_by_budget"][n], [str(n) for n in args.budgets]
        ),
        "test_accuracy_of_winner": paired(
            lambda s, n: s["test_of_winner"][n]["test_accuracy"], trained
        ),
    }
    pending = [str(n) for n in args.train_budgets if str(n) not in trained]
    result = {
        "summary": summary,
        "bayesian_minus_random_by_seed": differences,
        "winner_trainings_pending_at_budgets": pending,
        **context,
        "searches": searches,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    draw(searches, args.budgets, args.out.with_suffix(".png"))
    print(json.dumps({"summary": summary, "bayesian_minus_random_by_seed": differences}, indent=2))


if __name__ == "__main__":
    main()
