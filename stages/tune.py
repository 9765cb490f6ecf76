"""Stage tune: Bayesian search over tuner.space -> models/best_hyperparameters.json."""

from pathlib import Path

from digits import runtime
from digits.cli import run_stage
from digits.data import load_splits
from digits.files import write_csv, write_json
from digits.params import load_params
from digits.plots import tuning_progress
from digits.tuning import OBJECTIVE, run_search, summary_metrics, trial_table

TUNER_STATE = Path("models/tuner")
BEST_HYPERPARAMETERS = Path("models/best_hyperparameters.json")
METRICS = Path("metrics/tune.json")
TRIALS_TABLE = Path("plots/tune/trials.csv")
PROGRESS_PNG = Path("plots/tune/progress.png")


def main() -> None:
    params = load_params()
    runtime.configure(params.tuner.seed, params.runtime.threads)
    splits = load_splits(names=("train", "val"))
    result = run_search(params.tuner, splits["train"], splits["val"], TUNER_STATE)

    write_json(BEST_HYPERPARAMETERS, result.best.to_dict())
    write_json(METRICS, summary_metrics(result))
    rows = trial_table(result)
    write_csv(TRIALS_TABLE, rows)
    tuning_progress(
        [row["trial"] for row in rows],
        [row["score"] for row in rows],
        [row["best_so_far"] for row in rows],
        PROGRESS_PNG,
        OBJECTIVE,
    )
    print(f"tune: best {OBJECTIVE} {result.best_score:.4f} with {result.best.to_dict()}")


if __name__ == "__main__":
    run_stage(main)
