"""Stage train: tuned hyperparameters + train/val splits -> the calibrated model, curves, metrics.

The network is trained on its logits; the best epoch (by validation accuracy) is then
temperature-scaled on the validation split, so every probability downstream (evaluate,
error_analysis, `digits predict`, `digits export`) is calibrated; the argmax, hence accuracy,
is unchanged. `val_nll` (after scaling) is what recipe choices such as label smoothing are
compared on, with validation accuracy. Work in progress lives beside the model in
`<model>.checkpoints/<run key>/`, outside DVC's outputs, so a killed run resumes from its last
finished epoch on the next `dvc repro`.
"""

import argparse
from pathlib import Path

from digits import runtime
from digits.calibration import fit_temperature, logits, scaled_nll
from digits.data import load_split
from digits.errors import run_main
from digits.files import write_json
from digits.hyperparameters import Hyperparameters
from digits.model import probability_model
from digits.params import RuntimeParams, TrainParams, confirm_unchanged, load_section
from digits.training import (
    best_model,
    compile_for_training,
    discard_other_runs,
    finish,
    publish,
    run_key,
    train_model,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="prepared training split")
    parser.add_argument("--val", type=Path, required=True, help="prepared validation split")
    parser.add_argument("--hyperparameters", type=Path, required=True, help="from tune (JSON)")
    parser.add_argument("--model", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--metrics", type=Path, required=True, help="training metrics (JSON)")
    parser.add_argument("--curves", type=Path, required=True, help="DVCLive curves per epoch")
    args = parser.parse_args()

    runtime_params, params = load_section(RuntimeParams), load_section(TrainParams)
    settings = runtime.configure(params.seed, runtime_params.threads)
    hyperparameters = params.hyperparameters or Hyperparameters.load(args.hyperparameters)
    train, val = load_split(args.train), load_split(args.val)
    model = compile_for_training(hyperparameters, params, train)
    key = run_key(model, params, train, val, runtime_params.threads)
    checkpoints = args.model.with_suffix(".checkpoints")
    discard_other_runs(checkpoints, key, print)
    result = train_model(model, params, train, val, checkpoints / key)

    best = best_model(checkpoints / key)
    val_logits = logits(best, val.images)
    temperature = fit_temperature(val_logits, val.labels)
    val_nll = scaled_nll(val_logits, val.labels, temperature)
    confirm_unchanged(runtime_params, params, stage="train")
    publish(probability_model(best, temperature), checkpoints / key, args.model, args.curves)
    calibration = {"temperature": round(temperature, 6), "val_nll": round(val_nll, 6)}
    write_json(args.metrics, {**result.metrics(), **calibration, **settings})
    finish(checkpoints / key)
    print(
        f"train: best val_accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
        f"temperature {temperature:.4f} (fitted on validation)"
    )


if __name__ == "__main__":
    run_main(main)
