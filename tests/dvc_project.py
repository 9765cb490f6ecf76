"""End-to-end test helpers: this checkout's files in a temporary git repository, and the `dvc`,
`git` and `digits` commands run there the way a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "prepare": {"train_subsample": 600, "validation_size": 200, "test_subsample": 300},
    "tuner": {
        "max_trials": 2,
        "num_initial_points": 1,
        "epochs_per_trial": 1,
        "images_per_trial": 400,
    },
    "train": {"epochs": 1, "warmup_epochs": 0},
}


def dvc_env(**overrides: str) -> dict[str, str]:
    """This environment, with the venv's `dvc` and `digits` first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **overrides}


def run_unchecked(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=workdir, env=env or dvc_env(), capture_output=True, text=True, check=False
    )


def run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_unchecked(workdir, *args, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def git(workdir: Path, *args: str) -> str:
    return run(workdir, "git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args)


def copy_project(workdir: Path, tiny: bool = True) -> Path:
    """A fresh git repository (branch main) holding this checkout's files as they would be
    committed: tracked files and new ones git does not ignore, as they are in the working tree.

    With `tiny`, params.yaml gets the TINY values and the committed run (dvc.lock, metrics/,
    plots/) is left out, so `dvc repro` runs every stage in a minute or two.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, workdir / name)
    if tiny:
        params = yaml.safe_load((workdir / "params.yaml").read_text())
        for section, values in TINY.items():
            params[section].update(values)
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for stale in ("dvc.lock", "metrics", "plots"):
            path = workdir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    git(workdir, "init", "-q", "-b", "main")
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", "tiny params" if tiny else "this checkout")
    return workdir


def require(condition: bool, reason: str) -> None:
    """Skip a test whose tools are missing, except in CI (CI=true), where .ci/run installs them:
    there a missing tool fails, so a green run cannot hide a missing install step."""
    if not condition:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)
