"""What an edit reruns: every module a stage runs is its dependency, and a rerun keeps the work
that the edit did not change (the search is keyed on what defines a trial, not source bytes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import copy_project, dvc_env, git, read_yaml, run, run_unchecked

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


# Run as `python -c SECOND_RUN_DURING stages/evaluate.py ARGS...`: the evaluate stage, with a
# second `dvc exp run` started in the same workspace once the stage has read params.yaml.
SECOND_RUN_DURING = """
import os, pathlib, runpy, subprocess, sys
import digits.data

real_load_split = digits.data.load_split

def load_split(path):
    second = subprocess.run(
        ["dvc", "exp", "run", "-n", "b", "-S", "evaluate.batch_size=500"],
        capture_output=True, text=True,
    )
    pathlib.Path(os.environ["SECOND_RUN_LOG"]).write_text(
        f"exit {second.returncode}\\n{second.stdout}{second.stderr}"
    )
    return real_load_split(path)

digits.data.load_split = load_split
sys.argv = sys.argv[1:]  # drop "-c": the stage script and its arguments
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def restore(project: Path) -> None:
    """The committed tiny run, in Git and in the workspace's DVC outputs."""
    git(project, "reset", "-q", "--hard", "HEAD")
    run(project, "dvc", "checkout", "--force", "-q")


def test_a_second_exp_run_during_a_run_fails_it_instead_of_recording_a_lie(
    project: Path, tmp_path: Path
) -> None:
    """DVC refuses the second run on its lock, but only after writing its `-S` value into
    params.yaml, and records params.yaml as it is after a stage exits: the running stage must
    refuse to publish instead of ending up in dvc.lock with a value it did not run with."""
    restore(project)
    hook, log = tmp_path / "bin", tmp_path / "second_run.log"
    hook.mkdir()
    stage = f'exec {sys.executable} -c "$SECOND_RUN_DURING" "$@"'
    (hook / "python").write_text(
        f'#!/bin/sh\nif [ "$1" = stages/evaluate.py ]; then {stage}; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    (hook / "python").chmod(0o755)
    env = dvc_env(SECOND_RUN_DURING=SECOND_RUN_DURING, SECOND_RUN_LOG=str(log))
    env["PATH"] = f"{hook}{os.pathsep}{env['PATH']}"
    try:
        first = run_unchecked(
            project, "dvc", "exp", "run", "-n", "a", "-S", "train.learning_rate=0.002", env=env
        )
        assert not log.read_text().startswith("exit 0"), "DVC's lock refuses the second run"
        output = first.stdout + first.stderr
        assert first.returncode != 0, output
        changed = "error: params.yaml: evaluate.batch_size changed (1000 -> 500) while the "
        assert changed in output
        assert "one `dvc exp run` per workspace" in output
        lock = read_yaml(project / "dvc.lock")
        recorded = lock["stages"]["evaluate"]["params"]["params.yaml"]["evaluate"]
        assert recorded == {"batch_size": 1000}, "dvc.lock keeps what evaluate ran with"
    finally:
        restore(project)
