"""What an edit reruns: every module a stage runs is its dependency, and a rerun keeps the work
that the edit did not change (the search is keyed on what defines a trial, not source bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import copy_project, git, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = copy_project(tmp_path_factory.mktemp("reruns"))
    run(workdir, "dvc", "repro")
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", "tiny run")
    return workdir


def changed_stages(project: Path) -> list[str]:
    status = json.loads(run(project, "dvc", "status", "--json"))
    return sorted(name.split(":")[-1] for name in status)


def test_an_edit_to_params_py_reruns_every_stage_that_reads_params(project: Path) -> None:
    module = project / "src" / "digits" / "params.py"
    original = module.read_text()
    module.write_text(original + "\n# a changed default or declaration order reruns the stages\n")
    try:
        assert changed_stages(project) == [
            "error_analysis", "evaluate", "prepare", "train", "tune",
        ]  # fmt: skip
    finally:
        module.write_text(original)
    assert changed_stages(project) == []


def test_a_comment_only_edit_reruns_the_stages_and_keeps_the_search(project: Path) -> None:
    before = (project / "metrics" / "tune.json").read_text()
    module = project / "src" / "digits" / "model.py"
    module.write_text(module.read_text() + "\n# a comment changes no trial\n")
    assert {"tune", "train"} <= set(changed_stages(project))
    output = run(project, "dvc", "repro", "tune")
    assert "resuming with 2 trials done, 0 to run" in output
    assert (project / "metrics" / "tune.json").read_text() == before
    assert len(list((project / "models" / "tuner").iterdir())) == 1
