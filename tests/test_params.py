"""params.yaml validation: every problem is one message naming the key and what is allowed."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from digits.params import ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def error_for(raw: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    return str(error.value)


def test_the_committed_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.tuner.max_trials >= 1
    assert params.tuner.space.learning_rate.sampling == "log"


def test_a_missing_file_says_where_to_run_from(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found: run the stage from the repository root"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda p: p["tuner"].update(max_trials=0),
            "params.yaml: tuner.max_trials: must be >= 1, got 0",
        ),
        (
            lambda p: p["train"].update(learning_rate=-0.001),
            "params.yaml: train.learning_rate: must be null (use the tuned rate) or in (0, 1], "
            "got -0.001",
        ),
        (
            lambda p: p["prepare"].update(validation_size=70_000),
            "params.yaml: prepare.validation_size: (70000) must leave at least 10 of the 60000 "
            "training images for training",
        ),
        (
            lambda p: p["prepare"].update(train_subsample=500, validation_size=495),
            "prepare.validation_size: (495) must leave at least 10 of the 500",
        ),
        (
            lambda p: p["tuner"]["space"].update(dropout={"min": 0.5, "max": 0.2}),
            "params.yaml: tuner.space.dropout.min: (0.5) must not exceed max (0.2)",
        ),
        (
            lambda p: p["tuner"]["space"].update(kernel_size={"values": []}),
            "params.yaml: tuner.space.kernel_size.values: must list at least one value",
        ),
        (
            lambda p: p["tuner"]["space"].update(base_filters={"values": [16, "wide"]}),
            "tuner.space.base_filters.values: must all be int, got 'wide'",
        ),
        (
            lambda p: p["tuner"]["space"].update(
                learning_rate={"min": 0, "max": 0.1, "sampling": "log"}
            ),
            "tuner.space.learning_rate.min: must lie in [1e-06, 1.0], got 0",
        ),
        (
            lambda p: p["tuner"].update(epochs_per_trial=0),
            "params.yaml: tuner.epochs_per_trial: must be >= 1, got 0",
        ),
        (
            lambda p: p["tuner"].update(batch_size="big"),
            "params.yaml: tuner.batch_size: must be an integer, got 'big'",
        ),
        (
            lambda p: p["tuner"].update(max_trial=5),
            "params.yaml: tuner.max_trial: unknown key; allowed keys here: max_trials",
        ),
        (lambda p: p["train"].pop("epochs"), "params.yaml: train.epochs: is missing"),
        (lambda p: p.pop("evaluate"), "params.yaml: evaluate: is missing"),
        (
            lambda p: p["train"].update(augmentation=3),
            "params.yaml: train.augmentation: must be a mapping, got 3",
        ),
        (
            lambda p: p["tuner"]["space"].update(batch_norm={"min": 0, "max": 1}),
            "tuner.space.batch_norm.values: a yes/no dimension takes `values: [true, false]`",
        ),
        (
            lambda p: p["train"].update(warmup_epochs=99),
            "params.yaml: train.warmup_epochs: must be in [0, epochs=",
        ),
        (
            lambda p: p["runtime"].update(threads=0),
            "params.yaml: runtime.threads: must be in [1, 256], got 0",
        ),
    ],
)
def test_invalid_params_give_one_clear_message(
    raw: dict[str, Any], edit: Any, expected: str
) -> None:
    broken = copy.deepcopy(raw)
    edit(broken)
    assert expected in error_for(broken)


def test_numbers_written_as_yaml_1_1_text_are_accepted(raw: dict[str, Any]) -> None:
    raw["train"]["learning_rate"] = "3e-3"
    assert parse_params(raw).train.learning_rate == pytest.approx(0.003)


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("tuner: [unclosed\n")
    with pytest.raises(ParamsError, match="is not valid YAML"):
        load_params(path)


def test_a_stage_with_invalid_params_stops_with_one_line(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    raw["tuner"]["max_trials"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "tune.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: params.yaml: tuner.max_trials: must be >= 1, got 0"
    )
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"], "nothing is written"
