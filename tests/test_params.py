"""params.yaml validation: every problem is one line naming the key, the value and what is
allowed; every YAML 1.2 spelling of a number is read as DVC writes it."""

from __future__ import annotations

import ast
import copy
import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML

from digits.data import Split, save_split
from digits.evaluation import Predictions, save_predictions
from digits.hyperparameters import Hyperparameters
from digits.params import (
    EvaluateParams,
    ParamsError,
    RuntimeParams,
    TrainParams,
    TunerParams,
    confirm_unchanged,
    load_params,
    load_section,
    parse_params,
)
from tests.helpers import REPO, read_yaml


def dump_yaml(data: Any) -> str:
    """`data` as YAML 1.2 text, for tests that then edit the text."""
    stream = io.StringIO()
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = False
    writer.dump(data, stream)
    return stream.getvalue()


@pytest.fixture()
def raw() -> dict[str, Any]:
    return read_yaml(REPO / "params.yaml")


def error_for(raw: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    return str(error.value)


def test_the_committed_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.tuner.max_trials >= 1
    assert params.tuner.space["learning_rate"].sampling == "log"


def test_a_stage_loads_only_its_own_section(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["tuner"]["max_trials"] = 0  # invalid, but not the train stage's business
    (tmp_path / "params.yaml").write_text(dump_yaml(raw))
    assert load_section(TrainParams, tmp_path / "params.yaml").epochs == raw["train"]["epochs"]
    with pytest.raises(ParamsError, match=r"tuner\.max_trials"):
        load_section(TunerParams, tmp_path / "params.yaml")


def test_a_missing_file_says_where_to_run_from(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found: run the stage from the repository root"):
        load_params(tmp_path / "params.yaml")


# Each case: the edit, then the facts its one-line message must carry (the key first).
@pytest.mark.parametrize(
    ("edit", "facts"),
    [
        (lambda p: p["tuner"].update(max_trials=0), ["tuner.max_trials:", ">= 1", "got 0"]),
        (
            lambda p: p["train"].update(learning_rate=-0.001),
            ["train.learning_rate:", "> 0", "got -0.001"],
        ),
        (
            lambda p: p["prepare"].update(validation_size=70_000),
            ["prepare.validation_size:", "70000", "at least 10 of the 60000"],
        ),
        (
            lambda p: p["prepare"].update(train_subsample=500, validation_size=495),
            ["prepare.validation_size:", "495", "at least 10 of the 500"],
        ),
        (
            lambda p: p["tuner"]["space"].update(dropout={"min": 0.5, "max": 0.2}),
            ["tuner.space.dropout.min:", "0.5", "max (0.2)"],
        ),
        (
            lambda p: p["tuner"]["space"].update(kernel_size={"values": []}),
            ["tuner.space.kernel_size.values:", "empty", "got []"],
        ),
        (
            lambda p: p["tuner"]["space"].update(base_filters={"values": [16, "wide"]}),
            ["tuner.space.base_filters.values:", "integer", "got 'wide'"],
        ),
        (
            lambda p: p["tuner"]["space"].update(learning_rate={"min": 1e-7, "max": 0.1}),
            ["tuner.space.learning_rate.min:", "[1e-06, 1]", "got 1e-07"],
        ),
        (
            lambda p: p["tuner"]["space"].update(
                learning_rate={"min": 0, "max": 0.1, "sampling": "log"}
            ),
            ["tuner.space.learning_rate.min:", "> 0 with sampling: log"],
        ),
        (lambda p: p["tuner"].update(epochs_per_trial=0), ["tuner.epochs_per_trial:", "got 0"]),
        (lambda p: p["tuner"].update(selection="worst"), ["tuner.selection:", "got 'worst'"]),
        (
            lambda p: p["tuner"].update(selection="one_se", noise_seeds=1),
            ["tuner.selection:", "rescored_trials >= 2", "noise_seeds >= 2", "selection: best"],
        ),
        (lambda p: p["tuner"].update(max_mflops_per_image=0), ["tuner.max_mflops_per_image:"]),
        (lambda p: p["tuner"].update(max_trial=5), ["tuner.max_trial:", "unknown", "max_trials"]),
        (lambda p: p["train"].pop("epochs"), ["train.epochs:", "missing"]),
        (lambda p: p.pop("evaluate"), ["evaluate:", "missing"]),
        (lambda p: p["train"].update(augmentation=3), ["train.augmentation:", "mapping", "got 3"]),
        (
            lambda p: p["train"]["augmentation"].update(rotation=5),
            ["train.augmentation.rotation:", "unknown", "rotation_degrees"],
        ),
        (
            lambda p: p["tuner"]["space"].update(batch_norm={"min": 0, "max": 1}),
            ["tuner.space.batch_norm.min:", "unknown", "values"],
        ),
        (lambda p: p["train"].update(warmup_epochs=99), ["train.warmup_epochs:", "epochs", "99"]),
        (lambda p: p["runtime"].update(threads=0), ["runtime.threads:", ">= 1", "got 0"]),
        (lambda p: p["train"].update(epochs=True), ["train.epochs:", "integer", "got true"]),
        (
            lambda p: p["tuner"].update(trial_timeout_minutes=float("inf")),
            ["tuner.trial_timeout_minutes:", "finite"],
        ),
    ],
)
def test_invalid_params_give_one_line_naming_key_value_and_rule(
    raw: dict[str, Any], edit: Any, facts: list[str]
) -> None:
    broken = copy.deepcopy(raw)
    edit(broken)
    message = error_for(broken)
    assert message.startswith(f"params.yaml: {facts[0]}"), message
    assert "\n" not in message
    for fact in facts[1:]:
        assert fact in message, (fact, message)


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


LEAVES = numeric_leaves(read_yaml(REPO / "params.yaml"))


@pytest.mark.parametrize(("path", "value"), LEAVES, ids=[".".join(map(str, p)) for p, _ in LEAVES])
def test_every_number_accepts_every_yaml_1_2_spelling(
    tmp_path: Path, raw: dict[str, Any], path: tuple, value: int | float
) -> None:
    expected = load_params(REPO / "params.yaml")
    for text in spellings(value):
        edited = copy.deepcopy(raw)
        set_at(edited, path, "@@")
        file = tmp_path / "params.yaml"
        file.write_text(dump_yaml(edited).replace("'@@'", text).replace("@@", text))
        assert load_params(file) == expected, f"{'.'.join(map(str, path))}: {text}"


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("tuner.space.learning_rate.min=0.00001", ("tuner", "space", "learning_rate"), 1e-5),
        (
            "tuner.space.dense_units.values=[1.6e1,24,0x20]",
            ("tuner", "space", "dense_units"),
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
    ("dimension", "spec", "facts"),
    [
        ("dense_units", {"min": 8, "max": 64, "sampling": "log"}, None),  # no step needed
        (
            "dense_units",
            {"min": 8, "max": 64, "step": 1, "sampling": "log"},
            ["tuner.space.dense_units.step:", "> 1 with sampling: log", "got 1"],
        ),
        (
            "learning_rate",
            {"min": 1e-4, "max": 1e-2, "step": 0.5, "sampling": "log"},
            ["tuner.space.learning_rate.step:", "> 1 with sampling: log", "got 0.5"],
        ),
        (
            "base_filters",
            {"min": 8, "max": 64, "step": 2.5},
            ["tuner.space.base_filters.step:", "integer", "got 2.5"],
        ),
        (
            "base_filters",
            {"values": [16, 16.5]},
            ["tuner.space.base_filters.values:", "integer", "got 16.5"],
        ),
        ("kernel_size", {"values": [3, 3]}, ["tuner.space.kernel_size.values:", "twice"]),
        ("dropout", {"values": [0, 0.5]}, None),  # ints in a float choice become floats
        (
            "dropout",
            {"values": [0.1], "min": 0.1},
            ["tuner.space.dropout.min:", "unknown", "values"],
        ),
        ("dropout", {"min": 0.1, "max": 0.3, "step": 0}, ["tuner.space.dropout.step:", "> 0"]),
        ("batch_norm", {"values": [1, 0]}, ["tuner.space.batch_norm.values:", "true or false"]),
        ("dropout", {"min": 0.1, "max": 0.3, "sampling": "cube"}, ["sampling:", "'log'"]),
        ("dropout", {"mn": 0.1}, ["tuner.space.dropout.mn:", "unknown", "min, max"]),
        ("dropout", 0.2, ["tuner.space.dropout:", "mapping", "got 0.2"]),
    ],
)
def test_every_space_keras_tuner_refuses_is_refused_at_load(
    raw: dict[str, Any], dimension: str, spec: Any, facts: list[str] | None
) -> None:
    """Keras Tuner's own rules (its Int, Float and Choice constructors), checked before a stage
    touches any search state; what passes here Keras Tuner accepts (tests/test_search.py)."""
    import keras_tuner as kt

    from digits.search import declare_space

    raw["tuner"]["space"][dimension] = spec
    if facts is None:
        declare_space(kt.HyperParameters(), parse_params(raw).tuner.space)
        return
    message = error_for(raw)
    for fact in facts:
        assert fact in message, (fact, message)


def test_an_unknown_or_missing_dimension_names_the_model_s_dimensions(raw: dict) -> None:
    raw["tuner"]["space"]["kernel"] = {"values": [3]}
    message = error_for(raw)
    assert "tuner.space.kernel: unknown" in message and "conv_blocks, " in message
    del raw["tuner"]["space"]["kernel"], raw["tuner"]["space"]["dropout"]
    assert error_for(raw).startswith("params.yaml: tuner.space.dropout: is missing")


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
    (tmp_path / "params.yaml").write_text(dump_yaml(raw))
    command = read_yaml(REPO / "dvc.yaml")["stages"]["tune"]["cmd"].split()
    result = subprocess.run(
        [sys.executable, str(REPO / command[1]), *command[2:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: params.yaml: tuner.max_trials:") and "got 0" in last
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


def loaded_sections(script: Path) -> tuple[list[str], list[str]]:
    """The section classes a stage script loads (`name = load_section(Class)`, or a tuple of
    them), and the ones it passes to `confirm_unchanged`, by class name."""

    def loaded(value: ast.expr) -> str | None:
        is_load = isinstance(value, ast.Call) and getattr(value.func, "id", "") == "load_section"
        return value.args[0].id if is_load else None

    bound, confirmed = {}, []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
            many = isinstance(value, ast.Tuple)
            pairs = zip(target.elts, value.elts, strict=True) if many else [(target, value)]
            bound |= {name.id: loaded(call) for name, call in pairs if loaded(call)}
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "confirm_unchanged":
            confirmed = [bound.get(arg.id, arg.id) for arg in node.args]
    return list(bound.values()), confirmed


@pytest.mark.parametrize("stage", list(read_yaml(REPO / "dvc.yaml")["stages"]))
def test_a_stage_loads_and_checks_exactly_its_params_in_dvc_yaml(stage: str) -> None:
    import digits.params

    declared = read_yaml(REPO / "dvc.yaml")["stages"][stage]["params"]
    loads, confirmed = loaded_sections(REPO / "stages" / f"{stage}.py")
    keys = [getattr(digits.params, name).KEY for name in loads]
    sections = {key.split(".")[0] for key in declared}  # a section, or some of its keys
    assert sorted(keys) == sorted(sections), f"stages/{stage}.py loads {keys}"
    assert sorted(confirmed) == sorted(loads), (
        f"stages/{stage}.py checks {confirmed} before it publishes"
    )


def test_a_param_changed_while_a_stage_ran_is_refused_naming_it(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(dump_yaml(raw))
    read = [load_section(section, path) for section in (RuntimeParams, EvaluateParams)]
    tuner = load_section(TunerParams, path)
    raw["train"]["learning_rate"] = 0.002  # another stage's section
    raw["evaluate"]["batch_size"] = "1e3"  # the same value, spelled otherwise
    path.write_text(dump_yaml(raw))
    confirm_unchanged(*read, stage="evaluate", path=path)

    raw["evaluate"]["batch_size"] = 500
    path.write_text(dump_yaml(raw))
    with pytest.raises(ParamsError) as error:
        confirm_unchanged(*read, stage="evaluate", path=path)
    message = str(error.value)
    assert message.startswith(f"{path}: evaluate.batch_size changed (1000 -> 500) while the ")
    assert "nothing was published" in message
    assert "one `dvc exp run` per workspace" in message
    assert "`dvc exp run --queue" in message and "`dvc queue start`" in message

    raw["tuner"]["space"]["dropout"]["max"] = 0.3
    path.write_text(dump_yaml(raw))
    with pytest.raises(ParamsError, match=r"tuner\.space\.dropout\.max changed \(0\.5 -> 0\.3\)"):
        confirm_unchanged(tuner, stage="tune", path=path)
    raw["tuner"]["max_trials"] = 0
    path.write_text(dump_yaml(raw))
    with pytest.raises(ParamsError, match=r"no longer valid .*tuner\.max_trials: must be >= 1"):
        confirm_unchanged(tuner, stage="tune", path=path)


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
    (tmp_path / "params.yaml").write_text(dump_yaml(raw))
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


POINT = {
    "conv_blocks": 1, "convs_per_block": 1, "base_filters": 4, "first_kernel_size": 3,
    "kernel_size": 3, "batch_norm": False, "dropout": 0.1, "dense_units": 16,
    "learning_rate": 0.001,
}  # fmt: skip


def test_train_hyperparameters_null_is_the_tuned_point_and_a_mapping_is_that_point(
    raw: dict[str, Any],
) -> None:
    assert parse_params(raw).train.hyperparameters is None
    raw["train"]["hyperparameters"] = {**POINT, "dropout": 0}
    chosen = parse_params(raw).train.hyperparameters
    assert chosen == Hyperparameters(**{**POINT, "dropout": 0.0})
    assert isinstance(chosen.dropout, float)


@pytest.mark.parametrize(
    ("value", "facts"),
    [
        ({**POINT, "dropout": 2}, ["dropout: expected float in [0, 0.9], got 2"]),
        ({**POINT, "batch_norm": 1}, ["batch_norm: expected true or false, got 1"]),
        ({"conv_blocks": 2}, ["missing ['base_filters'", "unknown []"]),
        ({**POINT, "width": 3}, ["unknown ['width']"]),
        ([1, 2], ["expected a mapping of ['base_filters'", "got list"]),
    ],
)
def test_a_bad_train_hyperparameters_is_one_line_naming_the_dimension_and_the_fix(
    raw: dict[str, Any], value: Any, facts: list[str]
) -> None:
    raw["train"]["hyperparameters"] = value
    message = error_for(raw)
    assert message.startswith("params.yaml: train.hyperparameters: "), message
    assert "\n" not in message
    for fact in [*facts, "train.hyperparameters=null"]:
        assert fact in message, (fact, message)


@pytest.mark.parametrize(
    "overrides",
    [
        [
            "train.hyperparameters={conv_blocks:1,convs_per_block:1,base_filters:4,"
            "first_kernel_size:3,kernel_size:3,batch_norm:false,dropout:0.1,dense_units:16,"
            "learning_rate:0.001}"
        ],
        # Hydra's spelling of the same mapping: spaces after colons, 1e-3, false in lower case.
        [
            "train.hyperparameters={conv_blocks: 1, convs_per_block: 1, base_filters: 4, "
            "first_kernel_size: 3, kernel_size: 3, batch_norm: false, dropout: 0.1, "
            "dense_units: 16, learning_rate: 1e-3}"
        ],
    ],
    ids=["compact", "spaced"],
)
def test_train_hyperparameters_as_dvc_exp_run_set_writes_a_mapping(
    tmp_path: Path, overrides: list[str]
) -> None:
    """`-S 'train.hyperparameters={...}'` (Hydra's dict syntax: bare keys) replaces null with
    the mapping; on a mapping, `-S` merges (one key may change), and `=null` restores the tuned
    point."""
    from dvc.utils.hydra import apply_overrides

    file = tmp_path / "params.yaml"
    file.write_text((REPO / "params.yaml").read_text())
    apply_overrides(file, overrides)
    assert load_params(file).train.hyperparameters == Hyperparameters(**POINT)
    apply_overrides(file, ["train.hyperparameters={dropout: 0.3}"])
    assert load_params(file).train.hyperparameters.dropout == 0.3
    apply_overrides(file, ["train.hyperparameters.conv_blocks=2"])
    assert load_params(file).train.hyperparameters.conv_blocks == 2
    apply_overrides(file, ["train.hyperparameters=null"])
    assert load_params(file).train.hyperparameters is None


def test_train_hyperparameters_changed_while_training_is_refused_naming_both_values(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(dump_yaml(raw))
    train = load_section(TrainParams, path)
    raw["train"]["hyperparameters"] = POINT
    path.write_text(dump_yaml(raw))
    with pytest.raises(ParamsError) as error:
        confirm_unchanged(train, stage="train", path=path)
    assert "train.hyperparameters changed (null -> {conv_blocks: 1, " in str(error.value)
    assert "learning_rate: 0.001}) while the train stage ran" in str(error.value)
    confirm_unchanged(load_section(TrainParams, path), stage="train", path=path)


def test_the_demo_settings_in_the_makefile_are_valid_params(tmp_path: Path) -> None:
    """`make demo` passes its `DEMO` settings to `dvc exp run -S`: applied with DVC's own code,
    they must give params every stage accepts."""
    from dvc.utils.hydra import apply_overrides

    makefile = (REPO / "Makefile").read_text()
    block = makefile.split("DEMO :=", 1)[1].split("\ndemo:", 1)[0]
    settings = block.replace("\\\n", " ").split()
    assert "tuner.max_trials=2" in settings, settings
    file = tmp_path / "params.yaml"
    file.write_text((REPO / "params.yaml").read_text())
    apply_overrides(file, settings)
    params = load_params(file)
    assert params.prepare.train_subsample == 600 and params.train.epochs == 1
