"""The committed dvc.lock records the code and params in this tree, so that on a fresh clone
`dvc status` (after `dvc pull`) reports the pipeline up to date.

DVC 3 records a file dependency as the MD5 of its bytes (`hash: md5`) and a params dependency as
the values of the keys `dvc.yaml` lists. Only what Git holds is compared (stage scripts, library
modules, params): data and models are other stages' outputs and live in the DVC cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
YAML_SAFE = YAML(typ="safe", pure=True)
PIPELINE = YAML_SAFE.load((REPO / "dvc.yaml").read_text())["stages"]
LOCK = YAML_SAFE.load((REPO / "dvc.lock").read_text())["stages"]
PARAMS = YAML_SAFE.load((REPO / "params.yaml").read_text())
OUTPUTS = {
    next(iter(out)) if isinstance(out, dict) else out
    for stage in PIPELINE.values()
    for key in ("outs", "metrics", "plots")
    for out in stage.get(key, [])
}
RERUN = "rerun the pipeline (`dvc repro`) and commit dvc.lock, metrics/ and plots/ from that run"


def tracked_code(stage: str) -> list[str]:
    """The stage's file deps that Git holds: every dep that is no stage's output."""
    deps = PIPELINE[stage]["deps"]
    return [dep for dep in deps if not any(dep.startswith(out) for out in OUTPUTS)]


def param_value(key: str) -> Any:
    value: Any = PARAMS
    for part in key.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_every_stage_is_locked_with_its_command(stage: str) -> None:
    assert stage in LOCK, f"dvc.lock has no stage {stage}: {RERUN}"
    assert " ".join(LOCK[stage]["cmd"].split()) == " ".join(PIPELINE[stage]["cmd"].split()), (
        f"dvc.lock records another command for {stage}: {RERUN}"
    )


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_locked_code_is_the_code_in_this_tree(stage: str) -> None:
    locked = {dep["path"]: dep["md5"] for dep in LOCK[stage]["deps"]}
    for path in tracked_code(stage):
        assert path in locked, f"dvc.lock's {stage} does not list {path}: {RERUN}"
        current = hashlib.md5((REPO / path).read_bytes()).hexdigest()
        assert current == locked[path], f"{path} changed since dvc.lock's {stage} ran: {RERUN}"
    assert set(locked) <= set(PIPELINE[stage]["deps"]), (
        f"dvc.lock's {stage} lists deps dvc.yaml no longer has: {RERUN}"
    )


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_locked_params_are_the_params_in_this_tree(stage: str) -> None:
    locked = LOCK[stage].get("params", {}).get("params.yaml", {})
    assert set(locked) == set(PIPELINE[stage].get("params", [])), (
        f"dvc.lock's {stage} records other params keys than dvc.yaml lists: {RERUN}"
    )
    for key, value in locked.items():
        assert param_value(key) == value, f"params.yaml's {key} changed since {stage} ran: {RERUN}"
