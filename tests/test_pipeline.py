"""End to end: the repository's own dvc.yaml, run by real DVC commands on a tiny subset of MNIST."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from digits.model import load_model
from tests.helpers import copy_project, dvc_env, git, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh git repository holding this checkout's files, with tiny params."""
    return copy_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def reproduced(project: Path) -> str:
    output = run(project, "dvc", "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tiny run")
    return output


def test_repro_runs_every_stage_and_writes_every_output(project: Path, reproduced: str) -> None:
    for stage in ("prepare", "tune", "train", "evaluate", "error_analysis"):
        assert f"Running stage '{stage}'" in reproduced
    assert "mnist: " in reproduced and ": ok, 4 files verified" in reproduced
    assert "tune: trial 2/2 val_nll" in reproduced

    evaluate = json.loads((project / "metrics/evaluate.json").read_text())
    assert evaluate["samples"] == 300
    # The tiny run (600 training images, one epoch) scores 0.247 (CI 0.199-0.299): a floor 2.9
    # standard errors above chance (0.10 on 300 images) fails a model that learned nothing, or
    # predictions scored against labels out of order.
    assert evaluate["accuracy"] >= 0.15
    with (project / "plots/evaluate/confusion.csv").open() as table:
        wrong = sum(row["actual"] != row["predicted"] for row in csv.DictReader(table))
    assert evaluate["errors"] == wrong
    assert evaluate["accuracy"] == pytest.approx(1 - wrong / 300, abs=1e-6)
    assert evaluate["accuracy_ci_low"] < evaluate["accuracy"] < evaluate["accuracy_ci_high"]
    per_class = (project / "plots/evaluate/per_class.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in per_class[1:]] == [str(digit) for digit in range(10)]
    tune = json.loads((project / "metrics/tune.json").read_text())
    assert tune["trials"] == 2
    assert tune["standard_error"] > 0, "one_se re-scored both trials with 2 more seeds each"
    assert tune["best_val_nll"] <= tune["chosen_val_nll"] <= tune["band_limit"]
    assert tune["band_limit"] == pytest.approx(tune["best_val_nll"] + tune["standard_error"])
    hyperparameters = json.loads((project / "models/best_hyperparameters.json").read_text())
    assert hyperparameters == tune["chosen"]
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["epochs_run"] == 1
    error_analysis = json.loads((project / "metrics/error_analysis.json").read_text())
    with (project / "plots/error_analysis/label_issues.csv").open() as table:
        flagged = sum(int(row["flagged"]) for row in csv.DictReader(table))
    assert error_analysis["label_issues"] == flagged > 0

    model = load_model(project / "models/model.keras")  # one output: the calibrated softmax
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers[-3:]] == ["logits", "temperature", "probabilities"]
    header = (project / "plots/evaluate/confusion.csv").read_text().splitlines()
    assert header[0] == "actual,predicted" and len(header) == 301
    assert (project / "plots/tune/trials.csv").read_text().startswith("trial,score,best_so_far,")
    figures = ("misclassified", "confused_pairs", "label_issues", "reliability")
    pngs = [f"plots/error_analysis/images/{name}.png" for name in figures]
    # The confusion matrix and the error rate per digit are DVC plots of evaluate's tables only.
    written = sorted(path.name for path in (project / "plots/error_analysis/images").iterdir())
    assert written == sorted(f"{name}.png" for name in figures)
    for png in ["plots/tune/progress.png", *pngs]:
        assert matplotlib.image.imread(project / png).shape[2] in (3, 4), png


def test_a_second_repro_runs_nothing(project: Path, reproduced: str) -> None:
    assert "Data and pipelines are up to date" in run(project, "dvc", "repro")
    assert "Data and pipelines are up to date" in run(project, "dvc", "status")


@pytest.fixture(scope="module")
def bigger_search(project: Path, reproduced: str) -> str:
    """`dvc exp run -S tuner.max_trials=3` in the workspace: HEAD keeps the 2-trial run."""
    return run(project, "dvc", "exp", "run", "-S", "tuner.max_trials=3")


def test_a_bigger_search_as_an_experiment_resumes_and_shows_in_diffs(
    project: Path, bigger_search: str
) -> None:
    output = bigger_search
    assert "resuming with 2 trials done, 1 to run" in output
    assert "tune: trial 3/3" in output

    diff = json.loads(run(project, "dvc", "metrics", "diff", "--json"))
    assert diff["metrics/tune.json"]["trials"] == {"old": 2, "new": 3, "diff": 1}

    params_diff = json.loads(run(project, "dvc", "params", "diff", "--json"))
    assert params_diff["params.yaml"]["tuner.max_trials"]["new"] == 3

    run(project, "dvc", "plots", "diff", "-o", "review_plots")
    html = (project / "review_plots" / "index.html").read_text()
    assert "Hyperparameter search" in html
    assert "Confusion matrix" in html

    shown = run(project, "dvc", "exp", "show", "--json")
    assert "metrics/evaluate.json" in shown


def test_the_offline_review_shows_both_revisions(project: Path, bigger_search: str) -> None:
    """HEAD (2 trials) against the workspace (the 3-trial experiment)."""
    digits = Path(sys.executable).parent / "digits"
    output = run(project, str(digits), "review", "HEAD", "-o", "review")
    assert output.strip().splitlines()[-1] == "review: wrote review/README.md"
    report = (project / "review" / "README.md").read_text()
    assert "# Review: `HEAD` vs `workspace`" in report
    assert "## Paired test-set comparison (McNemar)" in report
    assert "tuner.max_trials" in report and "trials" in report
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert matplotlib.image.imread(project / "review" / image).ndim == 3, image
    assert "| `HEAD` | `workspace` |" in report
    assert "images/hyperparameter_search_val_nll_by_trial.png" in report


def test_queued_experiments_run_in_parallel_from_tracked_files(
    project: Path, reproduced: str, tmp_path: Path
) -> None:
    """Each queued experiment runs in a temporary copy holding only what Git and DVC track."""
    git(project, "add", "-A")
    git(project, "commit", "--allow-empty", "-qm", "before the queue")
    run(
        project,
        "dvc",
        "exp",
        "run",
        "--queue",
        "-n",
        "no-smoothing",
        "-S",
        "train.label_smoothing=0.0",
    )
    run(project, "dvc", "exp", "run", "--queue", "-n", "seed-7", "-S", "train.seed=7")
    # The workers are daemons that outlive `dvc queue start`: give them a log file, not this
    # test's pipes, and stop them at the end, since one can miss its empty-queue shutdown
    # (https://github.com/treeverse/dvc/issues/10427) and would otherwise hold the pipes open.
    with (tmp_path / "queue-start.log").open("w") as log:
        started = subprocess.run(
            ["dvc", "queue", "start", "-j", "2"], cwd=project, env=dvc_env(), stdout=log,
            stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    assert started.returncode == 0, (tmp_path / "queue-start.log").read_text()
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status = run(project, "dvc", "queue", "status")
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(5)
    finally:
        run(project, "dvc", "queue", "stop")
    assert status.count("Success") == 2, status
    experiments = json.loads(run(project, "dvc", "exp", "show", "--json"))
    names = json.dumps(experiments)
    assert "no-smoothing" in names and "seed-7" in names
