"""Stage train: tuned hyperparameters + train/val splits -> models/model.keras and its curves."""

from pathlib import Path

from digits import runtime
from digits.cli import run_stage
from digits.data import load_splits
from digits.files import write_json
from digits.model import Hyperparameters
from digits.params import load_params
from digits.training import train_model

BEST_HYPERPARAMETERS = Path("models/best_hyperparameters.json")
MODEL = Path("models/model.keras")
CHECKPOINTS = Path("models/checkpoints")
CURVES = Path("plots/train")
METRICS = Path("metrics/train.json")


def main() -> None:
    params = load_params()
    settings = runtime.configure(params.train.seed, params.runtime.threads)
    hyperparameters = Hyperparameters.load(BEST_HYPERPARAMETERS)
    splits = load_splits(names=("train", "val"))
    result = train_model(
        hyperparameters,
        params.train,
        splits["train"],
        splits["val"],
        threads=params.runtime.threads,
        model_path=MODEL,
        curves_dir=CURVES,
        checkpoints_dir=CHECKPOINTS,
    )
    write_json(
        METRICS, {**result.metrics(), "seed": settings["seed"], "threads": settings["threads"]}
    )
    print(f"train: best val_accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}")


if __name__ == "__main__":
    run_stage(main)
