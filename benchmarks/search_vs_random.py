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
from summary import spread

from digits import runtime
from digits.data import Split, load_split
from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from digits.params import Params, load_params
from digits.plots import save_figure
from digits.search import Search, TrialRecord, best_trial, run_trials
from digits.training import BEST, best_model, compile_for_training, run_key, train_model

ALGORITHMS = ("bayesian", "random")
RESULT = Path("benchmarks/results/search_vs_random.json")


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


def winner_training(
    params: Params, hp: Hyperparameters, splits: dict[str, Split], work: Path
) -> tuple[Any, Path]:
    """The compiled model of a winner and the run folder its training is kept in."""
    threads = params.runtime.threads
    runtime.configure(params.train.seed, threads)
    model = compile_for_training(hp, params.train, splits["train"])
    key = run_key(model, params.train, splits["train"], splits["val"], threads)
    return model, work / "trainings" / key


def winner_models() -> list[Path]:
    """The best checkpoint (.keras) of each distinct winner trained by this benchmark, found from
    its committed result file and today's params, so a stale run folder is never picked up.

    Raises:
        SystemExit: a winner in the result file is not a point of today's space, or has no
            trained checkpoint for today's params (a changed `train` recipe changes every run
            key); rerun this benchmark to train them.
    """
    params = load_params()
    splits = {name: load_split(Path("data/prepared") / f"{name}.npz") for name in ("train", "val")}
    searches = json.loads(RESULT.read_text())["searches"]
    winners = {json.dumps(w, sort_keys=True) for s in searches for w in s["winners"].values()}
    rerun = f"Rerun `python benchmarks/search_vs_random.py --out {RESULT}`"
    try:
        points = [
            Hyperparameters.from_dict(json.loads(w), f"{RESULT}, a winner", remedy=rerun)
            for w in winners
        ]
    except DigitsError as error:
        raise SystemExit(str(error)) from None
    work = Path("benchmarks/work/search_vs_random")
    models = sorted(winner_training(params, point, splits, work)[1] / BEST for point in points)
    missing = [str(model) for model in models if not model.is_file()]
    if not models or missing:
        named = ", ".join(missing) or f"{RESULT} lists none"
        raise SystemExit(
            f"no trained winner for today's params: {named}; "
            f"run `python benchmarks/search_vs_random.py --out {RESULT}` to train them"
        )
    return models


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
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/search_vs_random"))
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
