"""The tuned point a user may edit by hand (models/best_hyperparameters.json): every problem is
one message naming the dimension and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from digits.errors import DigitsError
from digits.hyperparameters import Hyperparameters
from tests.helpers import assert_says

TUNED = {
    "conv_blocks": 3,
    "convs_per_block": 1,
    "base_filters": 24,
    "first_kernel_size": 3,
    "kernel_size": 3,
    "batch_norm": True,
    "dropout": 0.3,
    "dense_units": 128,
    "learning_rate": 0.002,
}


def test_a_tuned_point_loads(tmp_path: Path) -> None:
    path = tmp_path / "best_hyperparameters.json"
    path.write_text(json.dumps(TUNED))
    assert Hyperparameters.load(path) == Hyperparameters(**TUNED)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("conv_blocks", 9, "conv_blocks: expected int in [1, 3], got 9"),
        ("conv_blocks", 2.5, "conv_blocks: expected int in [1, 3], got 2.5"),
        ("conv_blocks", True, "conv_blocks: expected int in [1, 3], got True"),
        ("dropout", -0.1, "dropout: expected float in [0, 0.9], got -0.1"),
        ("learning_rate", "0.01", "learning_rate: expected float in [1e-06, 1], got '0.01'"),
        ("batch_norm", 1, "batch_norm: expected true or false, got 1"),
    ],
)
def test_a_value_out_of_type_or_range_is_named(name: str, value: Any, message: str) -> None:
    with pytest.raises(DigitsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Hyperparameters.from_dict({**TUNED, name: value}, "best_hyperparameters.json")


def test_a_whole_number_is_a_float_value_and_becomes_a_float() -> None:
    dropout = Hyperparameters.from_dict({**TUNED, "dropout": 0}).dropout
    assert dropout == 0 and type(dropout) is float, "0 and 0.0 must give one run key"


def test_a_bound_reached_by_float_steps_is_inside() -> None:
    top = 0.3 + 3 * 0.2  # Keras Tuner's Float("dropout", 0.3, 0.9, step=0.2) draws this
    assert top > 0.9
    assert Hyperparameters.from_dict({**TUNED, "dropout": top}).dropout == top
    with pytest.raises(DigitsError) as error:
        Hyperparameters.from_dict({**TUNED, "dropout": 0.9001})
    assert_says(str(error.value), "dropout", "0.9001", "float", "`dvc repro tune`")


def test_missing_and_unknown_keys_are_named() -> None:
    values = {key: value for key, value in TUNED.items() if key != "dropout"}
    with pytest.raises(DigitsError, match=r"missing \['dropout'\], unknown \['width'\]"):
        Hyperparameters.from_dict({**values, "width": 3})


def test_a_missing_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(DigitsError, match="dvc repro tune"):
        Hyperparameters.load(tmp_path / "best_hyperparameters.json")
