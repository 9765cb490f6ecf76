"""dvc.yaml lists the library modules each stage runs, so editing one of them reruns the stage."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "src" / "digits"
# Plumbing that cannot change what a stage computes: the error type, atomic file writes, the stage
# runner and params parsing (the params themselves are tracked under each stage's `params:`).
PLUMBING = {"errors", "files", "cli", "params"}
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def runtime_imports(tree: ast.AST) -> Iterator[ast.ImportFrom]:
    """`from ... import` statements, skipping `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.ImportFrom):
            yield node
        yield from runtime_imports(node)


def library_modules_run_by(script: Path) -> set[str]:
    """The `digits` modules `script` imports, directly or through other non-plumbing modules."""
    found: set[str] = set()
    pending = [script]
    while pending:
        for node in runtime_imports(ast.parse(pending.pop().read_text())):
            if node.module == "digits":
                names = [alias.name for alias in node.names]
            elif (node.module or "").startswith("digits."):
                names = [node.module.split(".")[1]]
            else:
                continue
            for name in set(names) - found - PLUMBING:
                if (LIBRARY / f"{name}.py").is_file():
                    found.add(name)
                    pending.append(LIBRARY / f"{name}.py")
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_library_module_a_stage_runs_is_a_dependency(stage: str) -> None:
    assert STAGES[stage]["cmd"] == f"python stages/{stage}.py"
    needed = {
        f"src/digits/{name}.py"
        for name in library_modules_run_by(REPO / STAGES[stage]["cmd"].split()[1])
    }
    missing = sorted(needed - set(STAGES[stage]["deps"]))
    assert not missing, f"dvc.yaml: stage {stage} runs {missing} but does not list them in deps"
