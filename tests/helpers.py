"""Helpers the test modules share (fixtures live in conftest.py): tiny search params, stage
projects for running stage scripts directly, and DVC projects (this checkout's files in a
temporary git repository) with the `dvc`, `git` and `digits` commands run the way a user runs
them."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML

from digits.data import Split, save_split
from digits.params import (
    AugmentationParams,
    SearchDimension,
    SearchSpace,
    TrainParams,
    TunerParams,
)

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/NAME.py imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_yaml(path: Path) -> Any:
    """A YAML file as DVC reads it (YAML 1.2)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> None:
    """`data` as block-style YAML 1.2, keys in their order."""
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = False
    writer.sort_base_mapping_type_on_output = False
    with path.open("w", encoding="utf-8") as stream:
        writer.dump(data, stream)


def assert_says(message: str, *facts: str) -> None:
    """Assert that `message` is one line carrying every fact (a key, a path, a value, the fix
    command), whatever the sentence around them: a copy edit keeps a test green, a lost fact
    fails it."""
    missing = [fact for fact in facts if fact not in message]
    assert not missing, f"{message!r} does not say {missing}"
    assert "\n" not in message.strip(), f"{message!r} is more than one line"


def assert_same_arrays(left: list[np.ndarray], right: list[np.ndarray]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        np.testing.assert_array_equal(a, b)


def _space() -> SearchSpace:
    return SearchSpace(
        (
            SearchDimension("conv_blocks", values=(1, 2)),
            SearchDimension("convs_per_block", values=(1,)),
            SearchDimension("base_filters", values=(4, 8)),
            SearchDimension("first_kernel_size", values=(3, 5)),
            SearchDimension("kernel_size", values=(3,)),
            SearchDimension("batch_norm", values=(True, False)),
            SearchDimension("dropout", min=0.1, max=0.3, step=0.1),
            SearchDimension("dense_units", values=(16,)),
            SearchDimension("learning_rate", min=1e-3, max=1e-2, sampling="log"),
        )
    )


# A search small enough for tests: 2 one-epoch trials on 200 images, the best one re-scored
# with one more seed.
TINY_TUNER = TunerParams(
    max_trials=2, num_initial_points=1, seed=3, epochs_per_trial=1, images_per_trial=200,
    max_mflops_per_image=None, selection="best", rescored_trials=1, noise_seeds=1, workers=0,
    trial_timeout_minutes=5, trials_per_process=None, space=_space(),
)  # fmt: skip
# The train section a tiny search's trials compress (batch size, augmentation, smoothing).
TINY_RECIPE = TrainParams(
    epochs=20, batch_size=64, learning_rate=None, warmup_epochs=0.25, label_smoothing=0.1,
    early_stopping_patience=5, seed=42,
    augmentation=AugmentationParams(
        rotation_degrees=10, shift_fraction=0.1, zoom_fraction=0.1, contrast_fraction=0.8
    ),
)  # fmt: skip


def tuner_section(params: TunerParams) -> dict[str, Any]:
    """`params` as the `tuner:` section of params.yaml."""
    section = {
        field.name: getattr(params, field.name)
        for field in dataclasses.fields(params)
        if field.name != "space"
    }
    section["space"] = {
        dim.name: {"values": list(dim.values)}
        if dim.is_choice
        else {
            key: value
            for key, value in (
                ("min", dim.min), ("max", dim.max), ("step", dim.step), ("sampling", dim.sampling)
            )
            if value is not None
        }
        for dim in params.space.dimensions
    }  # fmt: skip
    return section


def stage_project(folder: Path, splits: dict[str, Split], tuner: TunerParams) -> Path:
    """A working directory like the repository's for running stage scripts directly: this
    checkout's params.yaml with `tuner` as its tuner section, and the prepared splits."""
    params = read_yaml(REPO / "params.yaml")
    params["tuner"] = tuner_section(tuner)
    write_yaml(folder / "params.yaml", params)
    for name, split in splits.items():
        save_split(split, folder / "data" / "prepared" / f"{name}.npz")
    return folder


def stage_command(stage: str) -> list[str]:
    """The stage's `cmd` from dvc.yaml, with the script as an absolute path into this checkout."""
    words = read_yaml(REPO / "dvc.yaml")["stages"][stage]["cmd"].split()
    assert words[0] == "python"
    return [sys.executable, str(REPO / words[1]), *words[2:]]


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
        params = read_yaml(workdir / "params.yaml")
        for section, values in TINY.items():
            params[section].update(values)
        write_yaml(workdir / "params.yaml", params)
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


def permission_bits_stop_writes() -> bool:
    """Whether a folder without write permission refuses this process a new file: not for root
    (CAP_DAC_OVERRIDE), so tests of that refusal skip there."""
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.mkdir(mode=0o555)
        try:
            (locked / "probe").touch()
        except PermissionError:
            return True
        finally:
            locked.chmod(0o755)
        return False
