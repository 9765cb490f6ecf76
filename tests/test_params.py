"""params.yaml validation: every problem is one message naming the key and what is allowed."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from digits.data import Split, save_split
from digits.evaluation import Predictions, save_predictions
from digits.params import STAGE_SECTIONS, ParamsError, confirm_unchanged, load_params, parse_params

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
    assert params.tuner.space["learning_rate"].sampling == "log"


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
            "params.yaml: tuner.space.kernel_size.values: must be a non-empty list, got []",
        ),
        (
            lambda p: p["tuner"]["space"].update(base_filters={"values": [16, "wide"]}),
            "tuner.space.base_filters.values: must be an integer, got 'wide'",
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


def numeric_leaves(tree: Any, path: tuple = ()) -> list[tuple[tuple, int | float]]:
    """Every int or float in the committed params, with its path of keys and list indices."""
    if isinstance(tree, dict):
        return [leaf for key, value in tree.items() for leaf in numeric_leaves(value, (*path, key))]
    if isinstance(tree, list):
        return [leaf for i, value in enumerate(tree) for leaf in numeric_leaves(value, (*path, i))]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [(path, tree)]
    return []


def spellings(value: int | float) -> list[str]:
    """How YAML 1.2 (and `dvc exp run -S`, which writes YAML 1.2) may spell the same number."""
    forms = [repr(value), f"{value:e}", f"{value:E}", f"+{value!r}", f"'{value!r}'"]
    if float(value).is_integer():
        number = int(value)
        forms += [f"{number}.0", f"{float(number):e}", hex(number), f"0o{number:o}"]
    return forms


def set_at(tree: Any, path: tuple, text: str) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = text


LEAVES = numeric_leaves(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.mark.parametrize(("path", "value"), LEAVES, ids=[".".join(map(str, p)) for p, _ in LEAVES])
def test_every_number_accepts_every_yaml_1_2_spelling(
    tmp_path: Path, raw: dict[str, Any], path: tuple, value: int | float
) -> None:
    expected = load_params(REPO / "params.yaml")
    for text in spellings(value):
        edited = copy.deepcopy(raw)
        set_at(edited, path, "@@")
        file = tmp_path / "params.yaml"
        file.write_text(yaml.safe_dump(edited, sort_keys=False).replace("'@@'", text))
        assert load_params(file) == expected, f"{'.'.join(map(str, path))}: {text}"


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("tuner.space.learning_rate.min=0.00001", ("tuner", "space", "learning_rate"), 1e-5),
        (
            "tuner.space.base_filters.values=[1.6e1,24,0x20]",
            ("tuner", "space", "base_filters"),
            None,
        ),
        ("train.learning_rate=1e-05", ("train", "learning_rate"), 1e-5),
        ("tuner.max_trials=5e1", ("tuner", "max_trials"), 50),
    ],
)
def test_params_as_dvc_exp_run_set_writes_them(
    tmp_path: Path, override: str, key: tuple, value: Any
) -> None:
    """`dvc exp run -S` writes params.yaml through DVC's own override code: load what it wrote."""
    from dvc.utils.hydra import apply_overrides

    file = tmp_path / "params.yaml"
    file.write_text((REPO / "params.yaml").read_text())
    apply_overrides(file, [override])
    params = load_params(file)
    section = getattr(params, key[0])
    if key[1] == "space":
        dimension = section.space[key[2]]
        if value is None:
            assert dimension.values == (16, 24, 32)
        else:
            assert dimension.min == value
    else:
        assert getattr(section, key[1]) == value


@pytest.mark.parametrize(
    ("dimension", "spec", "expected"),
    [
        (
            "dense_units",
            {"min": 8, "max": 64, "sampling": "log"},
            None,  # an integer range sampled on a log scale needs no step
        ),
        (
            "dense_units",
            {"min": 8, "max": 64, "step": 1, "sampling": "log"},
            "tuner.space.dense_units.step: must be > 1 with sampling: log (it multiplies",
        ),
        (
            "learning_rate",
            {"min": 1e-4, "max": 1e-2, "step": 0.5, "sampling": "log"},
            "tuner.space.learning_rate.step: must be > 1 with sampling: log",
        ),
        (
            "base_filters",
            {"min": 8, "max": 64, "step": 2.5},
            "tuner.space.base_filters.step: must be an integer, got 2.5",
        ),
        (
            "base_filters",
            {"values": [16, 16.5]},
            "tuner.space.base_filters.values: must be an integer, got 16.5",
        ),
        ("kernel_size", {"values": [3, 3]}, "tuner.space.kernel_size.values: lists a value twice"),
        ("dropout", {"values": [0, 0.5]}, None),  # ints in a float choice become floats
        (
            "dropout",
            {"values": [0.1], "min": 0.1},
            "tuner.space.dropout.values: give either `values` or `min`/`max`",
        ),
        ("dropout", {"min": 0.1, "max": 0.3, "step": 0}, "tuner.space.dropout.step: must be > 0"),
        ("batch_norm", {"values": [1, 0]}, "tuner.space.batch_norm.values: must be true or false"),
        ("dropout", {"min": 0.1, "max": 0.3, "sampling": "cube"}, "must be linear or log"),
        ("dropout", {"mn": 0.1}, "tuner.space.dropout.mn: unknown key"),
        ("dropout", 0.2, "tuner.space.dropout: must be a mapping"),
    ],
)
def test_every_space_keras_tuner_refuses_is_refused_at_load(
    raw: dict[str, Any], dimension: str, spec: Any, expected: str | None
) -> None:
    """Keras Tuner's own rules (its Int, Float and Choice constructors), checked before a stage
    touches any search state; what passes here Keras Tuner accepts (tests/test_search.py)."""
    import keras_tuner as kt

    from digits.search import declare_space

    raw["tuner"]["space"][dimension] = spec
    if expected is None:
        declare_space(kt.HyperParameters(), parse_params(raw).tuner.space)
    else:
        assert expected in error_for(raw)


def test_an_unknown_or_missing_dimension_names_the_model_s_dimensions(raw: dict) -> None:
    raw["tuner"]["space"]["kernel"] = {"values": [3]}
    assert "tuner.space.kernel: unknown dimension; the model has: conv_blocks," in error_for(raw)
    del raw["tuner"]["space"]["kernel"], raw["tuner"]["space"]["dropout"]
    assert "params.yaml: tuner.space.dropout: is missing" in error_for(raw)


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("tuner: [unclosed\n")
    with pytest.raises(ParamsError, match="is not valid YAML"):
        load_params(path)


@pytest.mark.slow
def test_a_stage_with_invalid_params_stops_with_one_line(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    raw["tuner"]["max_trials"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    command = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["tune"]["cmd"].split()
    result = subprocess.run(
        [sys.executable, str(REPO / command[1]), *command[2:]],
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


def latin_1_params(folder: Path) -> int:
    """The committed params.yaml in `folder` with a Latin-1 comment; returns the byte offset of
    its first non-UTF-8 byte (0xe9, é)."""
    text = (REPO / "params.yaml").read_bytes()
    (folder / "params.yaml").write_bytes(text + "# réglages\n".encode("latin-1"))
    return len(text) + len(b"# r")


def test_a_params_file_that_is_not_utf8_names_the_byte_and_the_fix(tmp_path: Path) -> None:
    offset = latin_1_params(tmp_path)
    line = (REPO / "params.yaml").read_bytes().count(b"\n") + 1
    with pytest.raises(ParamsError) as error:
        load_params(tmp_path / "params.yaml")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'params.yaml'} is not UTF-8")
    assert f"byte 0xe9 at position {offset} (line {line})" in message
    assert message.endswith("save params.yaml as UTF-8")


@pytest.mark.slow
def test_a_stage_run_directly_on_non_utf8_params_stops_with_one_line(tmp_path: Path) -> None:
    offset = latin_1_params(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "prepare.py"), "--out", "data/prepared"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: params.yaml is not UTF-8: byte 0xe9 at position ")
    assert str(offset) in last and last.endswith("save params.yaml as UTF-8")
    assert not (tmp_path / "data").exists()


def test_each_stage_s_sections_are_its_params_in_dvc_yaml() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {name: tuple(stage["params"]) for name, stage in stages.items()} == STAGE_SECTIONS
    for name in stages:
        source = (REPO / "stages" / f"{name}.py").read_text()
        assert f'confirm_unchanged({"loaded" if "loaded =" in source else "params"}, "{name}")' in (
            source
        ), f"stages/{name}.py checks its params before it publishes"


def test_a_param_changed_while_a_stage_ran_is_refused_naming_it(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    read = load_params(path)
    raw["train"]["learning_rate"] = 0.002  # another stage's section
    raw["evaluate"]["batch_size"] = "1e3"  # the same value, spelled otherwise
    path.write_text(yaml.safe_dump(raw))
    confirm_unchanged(read, "evaluate", path)

    raw["evaluate"]["batch_size"] = 500
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError) as error:
        confirm_unchanged(read, "evaluate", path)
    message = str(error.value)
    assert message.startswith(f"{path}: evaluate.batch_size changed (1000 -> 500) while the ")
    assert "nothing was published" in message
    assert "one `dvc exp run` per workspace" in message
    assert "`dvc exp run --queue" in message and "`dvc queue start`" in message

    raw["tuner"]["space"]["dropout"]["max"] = 0.3
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"tuner\.space\.dropout\.max changed \(0\.4 -> 0\.3\)"):
        confirm_unchanged(read, "tune", path)
    raw["tuner"]["max_trials"] = 0
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"no longer valid .*tuner\.max_trials: must be >= 1"):
        confirm_unchanged(read, "error_analysis", path)


EDIT_PARAMS_WHILE_RUNNING = """
import runpy, sys
from pathlib import Path
import digits.data

OLD, NEW = sys.argv[1:]

def load_split(path):
    # The stage has read params.yaml; another `dvc exp run -S` now writes it.
    params = Path("params.yaml")
    params.write_text(params.read_text().replace(OLD, NEW))
    return real_load_split(path)

real_load_split, digits.data.load_split = digits.data.load_split, load_split
sys.argv = [STAGE, "--test", "data/prepared/test.npz", "--predictions",
            "data/predictions/test.npz", "--metrics", "metrics/error_analysis.json",
            "--plots", "plots/error_analysis"]
runpy.run_path(STAGE, run_name="__main__")
"""


@pytest.mark.slow
def test_a_stage_whose_params_change_while_it_runs_publishes_nothing(
    tmp_path: Path, raw: dict[str, Any], tiny_splits: dict[str, Split]
) -> None:
    """The error_analysis stage, run for real, with params.yaml written after it read it."""
    test = tiny_splits["test"]
    save_split(test, tmp_path / "data" / "prepared" / "test.npz")
    wrong = (test.labels + (np.arange(len(test.labels)) % 20 == 0)) % 10  # 10 errors
    probabilities = np.eye(10, dtype=np.float32)[wrong] * 0.9 + 0.01
    save_predictions(
        Predictions(probabilities, test.labels), tmp_path / "data" / "predictions" / "test.npz"
    )
    raw["error_analysis"]["top_pairs"] = 5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    script = EDIT_PARAMS_WHILE_RUNNING.replace(
        "STAGE", repr(str(REPO / "stages" / "error_analysis.py"))
    )

    def stage(old: str, new: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, old, new], cwd=tmp_path, capture_output=True,
            text=True, check=False,
        )  # fmt: skip

    unchanged = stage("top_pairs: 5", "top_pairs: 5")
    assert unchanged.returncode == 0, unchanged.stderr
    assert (tmp_path / "plots" / "error_analysis" / "confused_pairs.csv").is_file()
    for published in ("plots", "metrics"):
        shutil.rmtree(tmp_path / published)

    changed = stage("top_pairs: 5", "top_pairs: 3")
    assert changed.returncode == 1
    assert "Traceback" not in changed.stderr
    last = changed.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: params.yaml: error_analysis.top_pairs changed (5 -> 3) while the error_analysis "
        "stage ran"
    )
    assert list((tmp_path / "plots").iterdir()) == [], "no figure or table is published"
    assert not (tmp_path / "metrics").exists()
