"""digits.experiments.sweep_result: a file that is not a seed sweep's result is one error naming
the file and the command that writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digits.errors import DigitsError
from digits.experiments import sweep_result
from tests.helpers import load_benchmark

RUN = {"name": "default-seed1", "rev": "0123456789abcdef", "best_val_accuracy": 0.99}
GOOD = {"seeds": [1], "set": [], "train": {"epochs": 20}, "hyperparameters": {}, "runs": [RUN]}


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "sweep.json"
    path.write_text(content)
    return path


def test_a_sweep_result_is_read_as_written(tmp_path: Path) -> None:
    assert sweep_result(write(tmp_path, json.dumps(GOOD))) == GOOD


@pytest.mark.parametrize(
    ("content", "fact"),
    [
        ("{not json", "not JSON"),
        (json.dumps([1, 2]), "not a seed_sweep.py result"),
        (json.dumps({**GOOD, "runs": [{"name": "x"}]}), "not a seed_sweep.py result"),
        (json.dumps({key: v for key, v in GOOD.items() if key != "train"}), "train"),
        (json.dumps({**GOOD, "runs": []}), "no runs"),
    ],
)
def test_a_file_that_is_not_a_sweep_result_is_refused(
    tmp_path: Path, content: str, fact: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DigitsError) as raised:
        sweep_result(path)
    assert str(path) in str(raised.value) and fact in str(raised.value)
    assert "benchmarks/seed_sweep.py" in str(raised.value)


def test_a_missing_file_names_itself_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(DigitsError, match=r"cannot read it.*seed_sweep\.py run"):
        sweep_result(tmp_path / "absent.json")


def sweep_of(seeds: list[int], point: dict | None) -> dict:
    runs = [
        {**RUN, "name": f"s{seed}", "training_seconds": 200.0, "epochs_run": 20} for seed in seeds
    ]
    return {**GOOD, "seeds": seeds, "runs": runs, "hyperparameters": point}


def test_mnist_c_arms_take_the_chosen_seeds_in_order_with_their_epoch_time() -> None:
    mnist_c = load_benchmark("mnist_c")
    runs = mnist_c.arm_runs(sweep_of([42, 1, 2, 3], {"conv_blocks": 2}), [2, 42])
    assert [(run["seed"], run["name"], run["epoch_seconds"]) for run in runs] == [
        (2, "s2", 10.0),
        (42, "s42", 10.0),
    ]
    with pytest.raises(DigitsError, match=r"no runs for seeds \[7\]"):
        mnist_c.arm_runs(sweep_of([42, 1], {"conv_blocks": 2}), [42, 7])


def test_mnist_c_refuses_an_arm_whose_seeds_trained_different_architectures() -> None:
    with pytest.raises(DigitsError, match="different architectures"):
        load_benchmark("mnist_c").arm_runs(sweep_of([42, 1], None), None)
