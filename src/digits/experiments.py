"""What DVC experiments trained, read back by the benchmarks: a seed sweep's result file
(`benchmarks/seed_sweep.py`), each experiment's `models/model.keras` from DVC's cache, and the
test-set score the evaluate stage would give it.

No pipeline stage imports this module.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dvc.api as dvc_api
import keras

from digits import runtime
from digits.calibration import temperature_of
from digits.data import load_split
from digits.errors import DigitsError
from digits.evaluation import Predictions, evaluation_metrics
from digits.model import load_model, require_probabilities
from digits.params import EvaluateParams, RuntimeParams, load_section
from digits.spread import spread


def sweep_result(path: Path) -> dict[str, Any]:
    """A `benchmarks/seed_sweep.py` result file: `seeds`, `set`, `train` (the recipe, seed
    left out), `hyperparameters` (the architecture trained) and `runs` (each with the
    experiment's `name` and `rev`, and its metrics). Raises DigitsError naming the file and the
    command that writes it when it is missing or not such a result."""
    fix = f"write it with `python benchmarks/seed_sweep.py run ... --out {path}`"
    try:
        result = json.loads(path.read_text())
    except OSError as error:
        raise DigitsError(f"{path}: cannot read it ({error.strerror}): {fix}") from None
    except ValueError:
        raise DigitsError(f"{path}: not JSON: {fix}") from None
    runs = result.get("runs") if isinstance(result, dict) else None
    if (
        not isinstance(runs, list)
        or not {"train", "hyperparameters"} <= set(result)
        or not all(isinstance(run, dict) and {"name", "rev"} <= set(run) for run in runs)
    ):
        raise DigitsError(
            f"{path}: not a seed_sweep.py result (runs with name and rev, train, "
            f"hyperparameters): {fix}"
        )
    if not runs:
        raise DigitsError(f"{path}: the sweep lists no runs: {fix}")
    return result


def cached_model(run: dict[str, Any], scratch: Path) -> keras.Model:
    """The `models/model.keras` that the experiment `run["rev"]` (named `run["name"]`) wrote,
    copied from DVC's cache into the folder `scratch` and loaded. Raises DigitsError naming the
    experiment when the experiment or its cached model cannot be read (removed, garbage
    collected, or never pulled into this clone) or the copy does not load."""
    name, path = run["name"], scratch / f"{run['rev']}.keras"
    redo = f"`dvc exp remove {name}`, then run the sweep again"
    try:
        with dvc_api.open("models/model.keras", rev=run["rev"], mode="rb") as cached:
            path.write_bytes(cached.read())
    except OSError as error:
        raise DigitsError(f"experiment {name}: cannot copy its model ({error})") from error
    except Exception as error:  # dvc raises several kinds for a missing rev or cache entry
        raise DigitsError(
            f"experiment {name} ({run['rev'][:7]}): its models/model.keras cannot be read from "
            f"DVC ({error}): `dvc exp pull REMOTE {name}` if a remote has it, else {redo}"
        ) from error
    return load_model(path, f"the cached model of experiment {name} is damaged: {redo}")


def experiment_models(runs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], keras.Model]]:
    """Each run with its experiment's trained model (`cached_model`, whose DigitsError it
    raises), one at a time; the copy is deleted once the next one is asked for."""
    for run in runs:
        with tempfile.TemporaryDirectory() as scratch:
            yield run, cached_model(run, Path(scratch))


def score_on_test(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's test accuracy, errors and NLL (nats, after its temperature scaling) on
    data/prepared/test.npz, predicted and scored as the evaluate stage does (its threads and
    batch size, `digits.evaluation.evaluation_metrics`), and their spread
    (`digits.spread.spread`). For figures reported after a decision, never for making one.
    Raises DigitsError when a model cannot be read (`cached_model`) or the test split is
    missing."""
    runtime.configure(seed=0, threads=load_section(RuntimeParams).threads)
    test = load_split("data/prepared/test.npz")
    batch_size = load_section(EvaluateParams).batch_size
    scores = []
    for run, model in experiment_models(runs):
        require_probabilities(model)
        probabilities = model.predict(test.images, batch_size=batch_size, verbose=0)
        predictions = Predictions(
            probabilities.astype("float32"), test.labels, temperature_of(model)
        )
        metrics = evaluation_metrics(predictions)
        scores.append({"name": run["name"], "test_accuracy": metrics["accuracy"],
                       "errors": metrics["errors"], "test_nll": metrics["nll"]})  # fmt: skip
    return {
        "test_accuracy": spread([score["test_accuracy"] for score in scores]),
        "test_nll": spread([score["test_nll"] for score in scores]),
        "runs": scores,
    }
