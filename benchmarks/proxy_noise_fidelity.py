"""Benchmark: is the search's trial score worth deciding on? Its seed noise and its fidelity.

`score` runs search trials outside a search: each configuration of `CONFIGURATIONS` trained on
the trial recipe and budget that params.yaml gives (`digits.search.trial_scores`, the code a
trial runs), once per seed, and records validation NLL and accuracy. Results are written after
every run, and a rerun skips what is done, so a killed run resumes.

`train` trains each configuration with the default recipe and one seed through
`benchmarks/seed_sweep.py` (DVC experiments of the `train` stage with `train.hyperparameters`
set, validation only), into `benchmarks/results/fidelity/`. `report` then computes:

- noise: per objective, the pooled seed sd over the configurations scored with several seeds,
  and the spread (sd) of the configuration means, whose ratio says whether configurations are
  told apart;
- fidelity: Spearman's rank correlation (scipy) between the trial score and the fully trained
  validation accuracy, with a percentile bootstrap 95% interval over configurations (Efron and
  Tibshirani (1993), *An Introduction to the Bootstrap*, chapter 13).

    python benchmarks/proxy_noise_fidelity.py score --seeds 1 2 3 4 5 --only 0 1 2
    python benchmarks/proxy_noise_fidelity.py score --seeds 1
    python benchmarks/proxy_noise_fidelity.py train    # 12 DVC experiments, one at a time
    python benchmarks/proxy_noise_fidelity.py report

Validation data only: the test set is not read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

from digits import runtime
from digits.data import load_split
from digits.errors import run_main
from digits.files import write_json
from digits.hyperparameters import Hyperparameters
from digits.params import load_params
from digits.plots import save_figure
from digits.search import Search, mflops, trial_scores
from digits.selection import pooled_sd

RESULTS = Path("benchmarks/results/proxy_noise_fidelity.json")
FULL_RUNS = Path("benchmarks/results/fidelity")
BOOTSTRAP_SAMPLES = 10_000


def point(blocks, convs, filters, first, kernel, dropout, dense, rate) -> dict[str, Any]:
    return dict(
        conv_blocks=blocks, convs_per_block=convs, base_filters=filters, first_kernel_size=first,
        kernel_size=kernel, batch_norm=True, dropout=dropout, dense_units=dense,
        learning_rate=rate,
    )  # fmt: skip


# Spread over the default space: depth, width, kernels, dropout, head and a 30x range of peak
# learning rates, from 0.6 to 9.3 MFLOPs per image (the default cap is 10). The first three are
# scored with several seeds (the noise); all are fully trained (the fidelity).
CONFIGURATIONS = [
    point(3, 1, 16, 3, 3, 0.2, 128, 0.0036),  # the point an earlier search chose
    point(2, 1, 8, 3, 3, 0.1, 32, 0.0005),  # small and slow to learn
    point(3, 1, 24, 5, 3, 0.3, 128, 0.002),  # wide, 5 x 5 first
    point(2, 1, 16, 5, 3, 0.2, 64, 0.001),
    point(3, 2, 8, 5, 3, 0.0, 256, 0.008),
    point(3, 1, 16, 3, 3, 0.4, 256, 0.003),
    point(3, 1, 8, 3, 5, 0.5, 64, 0.0003),
    point(2, 1, 32, 5, 3, 0.3, 128, 0.0015),
    point(3, 2, 8, 3, 3, 0.1, 128, 0.005),
    point(3, 1, 24, 3, 3, 0.2, 32, 0.01),
    point(2, 2, 8, 5, 5, 0.2, 64, 0.0008),
    point(2, 1, 24, 5, 3, 0.3, 256, 0.0012),
]


def score(seeds: list[int], only: list[int] | None) -> None:
    params = load_params()
    runtime.configure(params.tuner.seed, params.runtime.threads)
    train = load_split("data/prepared/train.npz")
    val = load_split("data/prepared/val.npz")
    with tempfile.TemporaryDirectory() as scratch:
        search = Search.for_params(
            params.tuner, params.train, train, val, Path(scratch), params.runtime.threads
        )
    done = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    budget = {
        "epochs_per_trial": params.tuner.epochs_per_trial,
        "images_per_trial": len(search.train),
    }
    if done.get("budget", budget) != budget:
        raise SystemExit(f"{RESULTS} holds runs of another budget {done['budget']}; move it")
    done["budget"] = budget
    for index in only if only is not None else range(len(CONFIGURATIONS)):
        hp = Hyperparameters.from_dict(CONFIGURATIONS[index])
        for seed in seeds:
            if any(r["configuration"] == index and r["seed"] == seed for r in done["runs"]):
                continue
            result = trial_scores(search, hp, seed)
            done["runs"].append({"configuration": index, "seed": seed, **result})
            print(f"configuration {index} seed {seed}: {result}", flush=True)
            write_json(RESULTS, {**done, "environment": runtime.environment()})


def train() -> None:
    """Each configuration fully trained with the default recipe and training seed 42, as DVC
    experiments of the train stage (`benchmarks/seed_sweep.py`); done ones are skipped."""
    for index, config in enumerate(CONFIGURATIONS):
        out = FULL_RUNS / f"{index}.json"
        if out.is_file():
            continue
        subprocess.run(
            [sys.executable, "benchmarks/seed_sweep.py", "run", "--name", f"fidelity-{index}",
             "--seeds", "42", "--hyperparameters", json.dumps(config), "--out", str(out)],
            check=True,
        )  # fmt: skip


def noise(runs: list[dict], objective: str) -> dict[str, Any]:
    """Seed noise of `objective` over the configurations scored with several seeds: each one's
    mean and sd, the pooled sd (`digits.selection.pooled_sd`), the spread of the means, and
    for each pair of configurations the difference of their means with its standard error
    pooled_sd * sqrt(1/n1 + 1/n2)."""
    by_config: dict[int, list[float]] = {}
    for run in runs:
        by_config.setdefault(run["configuration"], []).append(run[objective])
    repeated = {c: s for c, s in by_config.items() if len(s) > 1}
    pooled = pooled_sd(list(repeated.values()))
    means = {c: float(np.mean(s)) for c, s in repeated.items()}
    spread = float(np.std(list(means.values()), ddof=1)) if len(means) > 1 else None
    pairs = {
        f"{a}-{b}": {
            "difference": means[a] - means[b],
            "standard_error": pooled * math.sqrt(1 / len(repeated[a]) + 1 / len(repeated[b])),
        }
        for a, b in itertools.combinations(sorted(repeated), 2)
    }
    return {
        "per_configuration": {
            str(c): {"mean": means[c], "sd": float(np.std(s, ddof=1)), "n": len(s)}
            for c, s in repeated.items()
        },
        "pooled_seed_sd": pooled,
        "sd_of_configuration_means": spread,
        "spread_over_seed_sd": spread / pooled if spread and pooled else None,
        "range_of_configuration_means": max(means.values()) - min(means.values()),
        "pairs": pairs,
    }


def fidelity(runs: list[dict], rng: np.random.Generator) -> dict[str, Any] | None:
    """Spearman's rho between each configuration's first-seed trial NLL and its fully trained
    validation accuracy (negated NLL, so a good trial score and a good final model agree)."""
    rows = []
    for index, config in enumerate(CONFIGURATIONS):
        path = FULL_RUNS / f"{index}.json"
        first = [r for r in runs if r["configuration"] == index]
        if not path.is_file() or not first:
            continue
        full = json.loads(path.read_text())["runs"][0]
        rows.append({
            "configuration": index, "hyperparameters": config,
            "mflops": mflops(Hyperparameters.from_dict(config)),
            "trial_val_nll": min(first, key=lambda r: r["seed"])["val_nll"],
            "trial_val_accuracy": min(first, key=lambda r: r["seed"])["val_accuracy"],
            "full_val_accuracy": full["best_val_accuracy"], "full_val_nll": full["val_nll"],
        })  # fmt: skip
    if len(rows) < 3:
        return None
    proxy = np.array([-row["trial_val_nll"] for row in rows])
    full = np.array([row["full_val_accuracy"] for row in rows])
    rho = float(spearmanr(proxy, full).statistic)
    draws = rng.integers(0, len(rows), size=(BOOTSTRAP_SAMPLES, len(rows)))
    boot = np.array([spearmanr(proxy[d], full[d]).statistic for d in draws])
    # A draw whose proxy or full scores are all equal has no rank correlation (NaN): left out.
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return {"rows": rows, "spearman_rho": rho, "bootstrap_95": [float(low), float(high)],
            "bootstrap_draws": BOOTSTRAP_SAMPLES,
            "bootstrap_draws_without_correlation": int(np.isnan(boot).sum()),
            "configurations": len(rows)}  # fmt: skip


def draw(found: dict[str, Any], out: Path) -> None:
    """Fully trained validation accuracy against the trial score, one labelled point per
    configuration, the rank correlation in the title."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in found["rows"]:
        at = (row["trial_val_nll"], 100 * row["full_val_accuracy"])
        axes.scatter(*at, color="tab:blue")
        axes.annotate(
            str(row["configuration"]), at, textcoords="offset points", xytext=(4, 3), fontsize=8
        )
    axes.set_xscale("log")
    axes.set_xlabel("trial score: validation NLL after one compressed epoch (lower is better)")
    axes.set_ylabel("best validation accuracy after full training (%)")
    low, high = found["bootstrap_95"]
    axes.set_title(
        f"Trial score against full training, {found['configurations']} configurations: "
        f"Spearman {found['spearman_rho']:.2f} (95% {low:.2f} to {high:.2f})",
        fontsize=10,
    )
    axes.grid(alpha=0.3, which="both")
    save_figure(figure, out)


def report() -> None:
    done = json.loads(RESULTS.read_text())
    done["noise"] = {o: noise(done["runs"], o) for o in ("val_nll", "val_accuracy")}
    done["fidelity"] = fidelity(done["runs"], np.random.default_rng(0))
    write_json(RESULTS, done)
    if done["fidelity"] is not None:
        draw(done["fidelity"], RESULTS.with_suffix(".png"))
    print(json.dumps({k: done[k] for k in ("noise", "fidelity")}, indent=1)[:3000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["score", "train", "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--only", type=int, nargs="+", help="configuration indices")
    args = parser.parse_args()
    if args.action == "score":
        score(args.seeds, args.only)
    if args.action == "train":
        train()
    report()


if __name__ == "__main__":
    run_main(main)
