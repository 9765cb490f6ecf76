"""Stage error_analysis: saved test predictions -> figures, tables and metrics about the errors."""

from pathlib import Path

from digits.analysis import write_error_analysis
from digits.cli import run_stage
from digits.data import load_split, split_path
from digits.evaluation import load_predictions
from digits.files import atomic_path, write_json
from digits.params import load_params

PREDICTIONS = Path("data/predictions/test.npz")
OUT_DIR = Path("plots/error_analysis")
METRICS = Path("metrics/error_analysis.json")


def main() -> None:
    params = load_params().error_analysis
    predictions = load_predictions(PREDICTIONS)
    test = load_split(split_path("test"))
    with atomic_path(OUT_DIR) as staging:
        metrics = write_error_analysis(predictions, test.images, params, staging)
    write_json(METRICS, metrics)
    top = ", ".join(f"{name} ({pair['count']})" for name, pair in metrics["top_pairs"].items())
    print(
        f"error_analysis: {metrics['errors']} errors; top confusions {top}; "
        f"{metrics['suspected_label_errors']} suspected label errors"
    )


if __name__ == "__main__":
    run_stage(main)
