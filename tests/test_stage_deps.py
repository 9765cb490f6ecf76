"""dvc.yaml is the one source of paths and lists what each stage runs, so that editing any of it
reruns exactly the stages it affects."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import read_yaml

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "src" / "digits"
STAGES = read_yaml(REPO / "dvc.yaml")["stages"]


def runtime_imports(tree: ast.AST) -> Iterator[ast.ImportFrom]:
    """`from ... import` statements, skipping `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.ImportFrom):
            yield node
        yield from runtime_imports(node)


def imported_modules(path: Path) -> set[str]:
    """The `digits` modules a file imports directly."""
    found = set()
    for node in runtime_imports(ast.parse(path.read_text())):
        if node.module == "digits":
            found |= {alias.name for alias in node.names}
        elif (node.module or "").startswith("digits."):
            found.add(node.module.split(".")[1])
    return {name for name in found if (LIBRARY / f"{name}.py").is_file()}


def library_modules_run_by(script: Path) -> set[str]:
    """Every `digits` module `script` imports, directly or through other modules."""
    found: set[str] = set()
    pending = [script]
    while pending:
        for name in imported_modules(pending.pop()) - found:
            found.add(name)
            pending.append(LIBRARY / f"{name}.py")
    return found


def command_paths(stage: dict) -> tuple[str, set[str]]:
    """The script a stage runs and the paths its command line passes (`--flag path`)."""
    words = stage["cmd"].split()
    assert words[:1] == ["python"] and words[1].startswith("stages/"), stage["cmd"]
    flags = words[2:]
    assert all(flag.startswith("--") for flag in flags[::2]), stage["cmd"]
    return words[1], set(flags[1::2])


def declared(stage: dict, section: str) -> set[str]:
    return {next(iter(item)) if isinstance(item, dict) else item for item in stage.get(section, [])}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_library_module_a_stage_runs_is_a_dependency_and_no_other(name: str) -> None:
    stage = STAGES[name]
    script, _ = command_paths(stage)
    assert script == f"stages/{name}.py"
    needed = {f"src/digits/{module}.py" for module in library_modules_run_by(REPO / script)}
    code = {dep for dep in declared(stage, "deps") if dep.endswith(".py")}
    assert sorted(needed - code) == [], f"stage {name} runs these but does not list them in deps"
    assert sorted(code - needed - {script}) == [], f"stage {name} lists deps it does not run"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_command_line_names_every_data_path_the_stage_declares(name: str) -> None:
    """Like DVC's example-get-started: paths live in dvc.yaml only, passed on each `cmd`."""
    stage = STAGES[name]
    _, passed = command_paths(stage)
    data = {dep for dep in declared(stage, "deps") if not dep.endswith(".py")}
    outputs = declared(stage, "outs") | declared(stage, "metrics") | declared(stage, "plots")
    assert passed == data | outputs


def test_no_import_circle_among_library_modules() -> None:
    graph = {path.stem: imported_modules(path) for path in LIBRARY.glob("*.py")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in graph.get(start, ())
        )

    circles = sorted(name for name in graph if reaches(name, name, {name}))
    assert circles == []


def test_stages_that_only_read_npz_files_do_not_load_tensorflow() -> None:
    heavy = {"tensorflow", "keras", "keras_tuner"}
    for name in ("prepare", "error_analysis"):
        script, _ = command_paths(STAGES[name])
        for module in library_modules_run_by(REPO / script) | {Path(script).stem}:
            path = LIBRARY / f"{module}.py" if module != Path(script).stem else REPO / script
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom)
            }
            assert not imported & heavy, f"{name} loads {imported & heavy} through {path.name}"


def test_the_cli_defaults_are_the_pipeline_s_paths() -> None:
    from digits import cli

    def flag(stage: str, name: str) -> str:
        words = STAGES[stage]["cmd"].split()
        return words[words.index(name) + 1]

    assert str(cli.MODEL) == flag("train", "--model") == flag("evaluate", "--model")
    assert str(cli.TEST_SPLIT) == flag("evaluate", "--test")
