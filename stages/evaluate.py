"""Stage evaluate: model + test split -> headline metrics, per-sample predictions, tables."""

import argparse
from pathlib import Path

from digits import runtime
from digits.calibration import temperature_of
from digits.data import load_split
from digits.errors import run_main
from digits.evaluation import (
    Predictions,
    confusion_rows,
    evaluation_metrics,
    per_class_rows,
    save_predictions,
)
from digits.files import write_csv, write_json
from digits.model import load_model, require_probabilities
from digits.params import EvaluateParams, RuntimeParams, confirm_unchanged, load_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", type=Path, required=True, help="prepared test split")
    parser.add_argument("--model", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--predictions", type=Path, required=True, help="per-sample (.npz)")
    parser.add_argument("--metrics", type=Path, required=True, help="headline metrics (JSON)")
    parser.add_argument("--confusion", type=Path, required=True, help="actual,predicted (CSV)")
    parser.add_argument("--per-class", type=Path, required=True, help="per-digit scores (CSV)")
    args = parser.parse_args()

    runtime_params, params = load_section(RuntimeParams), load_section(EvaluateParams)
    settings = runtime.configure(seed=0, threads=runtime_params.threads)
    test = load_split(args.test)
    model = load_model(args.model, "rerun the train stage: `dvc repro train`")
    require_probabilities(model)
    probabilities = model.predict(test.images, batch_size=params.batch_size, verbose=0)
    predictions = Predictions(probabilities.astype("float32"), test.labels, temperature_of(model))

    confirm_unchanged(runtime_params, params, stage="evaluate")
    save_predictions(predictions, args.predictions)
    metrics = evaluation_metrics(predictions)
    write_json(args.metrics, {**metrics, "environment": settings["environment"]})
    write_csv(args.confusion, confusion_rows(predictions))
    write_csv(args.per_class, per_class_rows(predictions))
    print(
        f"evaluate: test accuracy {metrics['accuracy']:.4f} (95% CI "
        f"{metrics['accuracy_ci_low']:.4f}-{metrics['accuracy_ci_high']:.4f}), "
        f"{metrics['errors']} errors of {metrics['samples']:,}; T = {metrics['temperature']:.3f}, "
        f"ECE {metrics['ece_unscaled']:.4f} -> {metrics['ece']:.4f}, "
        f"NLL {metrics['nll_unscaled']:.4f} -> {metrics['nll']:.4f}"
    )


if __name__ == "__main__":
    run_main(main)
