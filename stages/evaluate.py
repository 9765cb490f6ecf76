"""Stage evaluate: model + test split -> metrics/evaluate.json, per-sample predictions."""

from pathlib import Path

from digits import runtime
from digits.cli import run_stage
from digits.data import load_split, split_path
from digits.evaluation import Predictions, confusion_rows, evaluation_metrics, save_predictions
from digits.files import write_csv, write_json
from digits.model import load_model
from digits.params import load_params

MODEL = Path("models/model.keras")
PREDICTIONS = Path("data/predictions/test.npz")
METRICS = Path("metrics/evaluate.json")
CONFUSION_TABLE = Path("plots/evaluate/confusion.csv")


def main() -> None:
    params = load_params()
    runtime.configure(seed=0, threads=params.runtime.threads)
    test = load_split(split_path("test"))
    model = load_model(MODEL)
    probabilities = model.predict(test.images, batch_size=params.evaluate.batch_size, verbose=0)
    predictions = Predictions(probabilities.astype("float32"), test.labels)

    save_predictions(predictions, PREDICTIONS)
    metrics = evaluation_metrics(predictions)
    write_json(METRICS, metrics)
    write_csv(CONFUSION_TABLE, confusion_rows(predictions))
    print(
        f"evaluate: test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, "
        f"{metrics['errors']} errors of {metrics['samples']:,}"
    )


if __name__ == "__main__":
    run_stage(main)
