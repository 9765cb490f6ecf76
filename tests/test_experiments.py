"""digits.experiments.sweep_result: a file that is not a seed sweep's result is one error naming
the file and the command that writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digits.errors import DigitsError
from digits.experiments import sweep_result

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
