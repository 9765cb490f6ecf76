"""Stage error_analysis: saved test predictions -> figures, tables and metrics about the errors."""

import argparse
from pathlib import Path

from digits.analysis import find_errors, write_figures, write_tables
from digits.data import load_split
from digits.errors import run_main
from digits.evaluation import load_predictions
from digits.files import atomic_path, write_json
from digits.params import ErrorAnalysisParams, confirm_unchanged, load_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", type=Path, required=True, help="prepared test split")
    parser.add_argument("--predictions", type=Path, required=True, help="from evaluate (.npz)")
    parser.add_argument("--metrics", type=Path, required=True, help="error metrics (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="figures and tables")
    args = parser.parse_args()

    params = load_section(ErrorAnalysisParams)
    predictions = load_predictions(args.predictions)
    test = load_split(args.test)
    found = find_errors(predictions, test.images, params.top_pairs)
    with atomic_path(args.plots) as staging:
        write_figures(found, predictions, test.images, params, staging / "images")
        write_tables(found, predictions, staging)
        confirm_unchanged(params, stage="error_analysis")
    write_json(args.metrics, found.metrics())
    top = ", ".join(f"{p.actual} as {p.predicted} ({p.count})" for p in found.pairs)
    print(
        f"error_analysis: {found.errors} errors; top confusions {top or 'none'}; "
        f"{found.metrics()['label_issues']} test labels flagged as possible label errors"
    )


if __name__ == "__main__":
    run_main(main)
