"""benchmarks/seed_sweep.py on a tiny project: seeds queued as real DVC experiments of the
`train` stage, run one at a time, summarised from `dvc exp show --json`; a sweep run again
queues nothing; `train.hyperparameters` set with -S trains that architecture."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from digits.hyperparameters import Hyperparameters
from digits.model import build_model
from tests.helpers import copy_project, git, read_yaml, run, run_unchecked

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A point unlike any the tiny search draws (its space has 16 dense units, no 64).
POINT = {
    "conv_blocks": 1, "convs_per_block": 1, "base_filters": 4, "first_kernel_size": 3,
    "kernel_size": 3, "batch_norm": False, "dropout": 0.1, "dense_units": 64,
    "learning_rate": 0.002,
}  # fmt: skip
POINT_SET = (
    "train.hyperparameters={conv_blocks: 1, convs_per_block: 1, base_filters: 4, "
    "first_kernel_size: 3, kernel_size: 3, batch_norm: false, dropout: 0.1, dense_units: 64, "
    "learning_rate: 0.002}"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project whose prepared data and tuned point are committed (dvc.lock)."""
    project = copy_project(tmp_path_factory.mktemp("sweep"))
    run(project, "dvc", "repro", "train")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tiny run")
    return project


def sweep(project: Path, *args: str) -> str:
    return run(project, sys.executable, "benchmarks/seed_sweep.py", *args)


@pytest.fixture(scope="module")
def two_seeds(project: Path) -> tuple[str, dict[str, Any]]:
    output = sweep(project, "run", "--name", "tiny", "--seeds", "1", "2", "--out", "two.json")
    return output, json.loads((project / "two.json").read_text())


def test_a_sweep_trains_each_seed_as_an_experiment_and_summarises_them(
    project: Path, two_seeds: tuple[str, dict[str, Any]]
) -> None:
    output, result = two_seeds
    assert "queued tiny-seed1" in output and "queued tiny-seed2" in output
    assert result["seeds"] == [1, 2]
    assert [run["name"] for run in result["runs"]] == ["tiny-seed1", "tiny-seed2"]
    assert [run["params"] for run in result["runs"]] == [{"train.seed": 1}, {"train.seed": 2}]
    for run_ in result["runs"]:
        assert 0.0 <= run_["best_val_accuracy"] <= 1.0
        assert run_["val_nll"] > 0 and run_["temperature"] > 0 and run_["training_seconds"] > 0
        assert run_["environment"]["cores"]
    accuracies = [run_["best_val_accuracy"] for run_ in result["runs"]]
    assert result["best_val_accuracy"]["min"] == pytest.approx(min(accuracies))
    assert result["best_val_accuracy"]["max"] == pytest.approx(max(accuracies))
    assert result["best_val_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2, abs=1e-6)
    for figure in ("val_nll", "temperature", "training_seconds"):
        assert set(result[figure]) == {"mean", "sd", "min", "max"}, figure
    assert {"cpu", "tensorflow", "keras"} <= set(result["environment"])
    # The train target only: evaluate never ran on the test set.
    shown = run(project, "dvc", "exp", "show", "--json")
    assert "tiny-seed1" in shown and '"accuracy_ci_low"' not in shown


def test_a_sweep_run_again_queues_nothing_and_gives_the_same_summary(
    project: Path, two_seeds: tuple[str, dict[str, Any]]
) -> None:
    output = sweep(project, "run", "--name", "other", "--seeds", "2", "1", "--out", "again.json")
    assert "queued" not in output
    assert "seed 2: done already" in output and "seed 1: done already" in output
    again = json.loads((project / "again.json").read_text())
    assert [run_["name"] for run_ in again["runs"]] == ["tiny-seed2", "tiny-seed1"]
    assert again["best_val_accuracy"] == two_seeds[1]["best_val_accuracy"]


def test_train_hyperparameters_set_with_s_trains_that_architecture(
    project: Path, two_seeds: tuple[str, dict[str, Any]]
) -> None:
    sweep(project, "run", "--name", "arch", "--seeds", "1", "-S", POINT_SET, "--out", "arch.json")
    (experiment,) = json.loads((project / "arch.json").read_text())["runs"]
    assert experiment["name"] == "arch-seed1"
    assert experiment["params"] == {"train.hyperparameters": POINT, "train.seed": 1}
    expected = build_model(Hyperparameters(**POINT)).count_params()
    assert experiment["parameters"] == expected
    assert two_seeds[1]["runs"][0]["parameters"] != expected


@pytest.mark.parametrize(
    ("setting", "facts"),
    [
        ("train.hyperparameters={conv_blocks: 9}", ["train.hyperparameters:", "missing"]),
        ("train.seed=3", ["train.seed", "--seeds"]),
        ("tuner.max_trials=3", ["tuner.max_trials=3", "train.KEY=VALUE"]),
        ("train.epochs=0", ["train.epochs", "must be >= 1"]),
    ],
)
def test_a_bad_setting_is_one_line_and_queues_nothing(
    project: Path, setting: str, facts: list[str]
) -> None:
    result = run_unchecked(
        project, sys.executable, "benchmarks/seed_sweep.py", "run", "--seeds", "5", "-S", setting
    )
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: "), result.stderr
    for fact in facts:
        assert fact in message, (fact, message)
    assert "sweep-seed5" not in run(project, "dvc", "exp", "show", "--json")


def test_a_json_point_is_the_same_sweep_as_its_s_setting(project: Path) -> None:
    """`--hyperparameters JSON` writes `-S train.hyperparameters={...}` in DVC's syntax: the
    same experiment, found again whichever of the two queued it."""
    sweep(project, "run", "--name", "arch", "--seeds", "1", "-S", POINT_SET)
    output = sweep(
        project, "run", "--name", "json", "--seeds", "1", "--hyperparameters", json.dumps(POINT),
        "--out", "json.json",
    )  # fmt: skip
    assert "queued" not in output and "seed 1: done already" in output
    (experiment,) = json.loads((project / "json.json").read_text())["runs"]
    assert experiment["params"] == {"train.hyperparameters": POINT, "train.seed": 1}


def test_the_summary_records_the_recipe_and_the_tuned_point_it_trained(
    project: Path, two_seeds: tuple[str, dict[str, Any]]
) -> None:
    result = two_seeds[1]
    tuned = json.loads((project / "models/best_hyperparameters.json").read_text())
    assert result["hyperparameters"] == tuned
    assert [run_["hyperparameters"] for run_ in result["runs"]] == [tuned, tuned]
    train = read_yaml(project / "params.yaml")["train"]
    assert result["train"] == {
        key: value for key, value in train.items() if key not in ("seed", "hyperparameters")
    }
    assert all(run_["epochs_run"] >= 1 for run_ in result["runs"])


def test_the_benchmarks_read_each_experiments_model_from_dvcs_cache(
    project: Path, two_seeds: tuple[str, dict[str, Any]]
) -> None:
    """ensemble.py and test_time_augmentation.py score the sweep's models: each alone gives the
    validation accuracy its training recorded for that model (its best epoch)."""
    recorded = [run_["best_val_accuracy"] for run_ in two_seeds[1]["runs"]]
    run(project, sys.executable, "benchmarks/ensemble.py", "--sweep", "two.json",
        "--out", "ensemble.json")  # fmt: skip
    ensemble = json.loads((project / "ensemble.json").read_text())
    assert [model["val_accuracy"] for model in ensemble["models"]] == pytest.approx(recorded)
    assert [(size["size"], size["subsets"]) for size in ensemble["by_size"]] == [(1, 2), (2, 1)]
    run(project, sys.executable, "benchmarks/test_time_augmentation.py", "--sweep", "two.json",
        "--out", "tta.json")  # fmt: skip
    tta = json.loads((project / "tta.json").read_text())
    assert [model["plain"]["accuracy"] for model in tta["models"]] == pytest.approx(recorded)
    assert tta["summary"]["grid9"]["forward_passes"] == 9


def test_test_scores_come_only_when_asked_for_and_match_evaluate(
    project: Path, two_seeds: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    assert "test_after_decision" not in two_seeds[1]
    sweep(project, "summarise", "--seeds", "1", "2", "--test", "--out", "tested.json")
    tested = json.loads((project / "tested.json").read_text())["test_after_decision"]
    assert [score["name"] for score in tested["runs"]] == ["tiny-seed1", "tiny-seed2"]
    # Seed 1 the way a user scores it: the experiment made a branch, its model checked out of
    # DVC's cache, then the evaluate stage on the test set.
    applied = tmp_path / "applied"
    shutil.copytree(project, applied, symlinks=True)  # with its experiments and DVC cache
    run(applied, "dvc", "exp", "branch", "tiny-seed1", "seed1")
    git(applied, "checkout", "-q", "seed1")
    run(applied, "dvc", "checkout", "models/model.keras")
    run(applied, "dvc", "repro", "evaluate")
    evaluated = json.loads((applied / "metrics/evaluate.json").read_text())
    assert tested["runs"][0]["test_accuracy"] == pytest.approx(evaluated["accuracy"])
    assert tested["runs"][0]["errors"] == evaluated["errors"]
