"""Distributed tuning: the tune stage as Keras Tuner's chief with workers on 127.0.0.1."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from digits.data import Split
from digits.oracle import read_trials
from digits.processes import free_port
from tests.helpers import (
    REPO,
    TINY_TUNER,
    assert_says,
    copy_project,
    dvc_env,
    read_yaml,
    run,
    stage_command,
    stage_project,
    write_yaml,
)

STAGES_TUNE_CMD = " ".join(read_yaml(REPO / "dvc.yaml")["stages"]["tune"]["cmd"].split())

pytestmark = pytest.mark.slow


@pytest.fixture()
def project(tmp_path: Path, tiny_splits: dict[str, Split]) -> Path:
    splits = {name: tiny_splits[name] for name in ("train", "val")}
    return stage_project(tmp_path, splits, dataclasses.replace(TINY_TUNER, max_trials=4, workers=2))


def tune(project: Path, **env: str) -> subprocess.Popen:
    """The tune stage's own command, run in `project` with `env` added to this environment."""
    return subprocess.Popen(
        stage_command("tune"), cwd=project, env={**os.environ, **env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def trials_table(project: Path) -> list[dict[str, str]]:
    with (project / "plots" / "tune" / "trials.csv").open() as table:
        return list(csv.DictReader(table))


def test_two_workers_run_every_trial_exactly_once(project: Path) -> None:
    code, out, err = finish(tune(project))
    assert code == 0, err
    rows = trials_table(project)
    assert [row["trial"] for row in rows] == ["1", "2", "3", "4"]
    points = {tuple(value for key, value in row.items() if key not in ("trial", "score",
              "best_so_far", "epochs", "seconds")) for row in rows}  # fmt: skip
    assert len(points) == 4, "no trial was run twice"
    assert "tune: chief serving the oracle on 127.0.0.1:" in out


def test_a_finished_distributed_search_raised_runs_only_the_new_trial(project: Path) -> None:
    """The chief ends each trial as a worker reports it: a search that finished and is then
    raised by one trial runs that trial alone, not again the trials the workers last ended."""
    code, _, err = finish(tune(project))
    assert code == 0, err
    params = read_yaml(project / "params.yaml")
    params["tuner"]["max_trials"] = 5
    write_yaml(project / "params.yaml", params)
    code, out, err = finish(tune(project))
    assert code == 0, err
    assert "resuming with 4 trials done, 1 to run" in out
    assert re.findall(r"tuner\d finished trial (\d+)", out) == ["4"], out
    assert re.search(r"finished trial 4: score \d+\.\d{4}$", out, flags=re.MULTILINE), out
    assert [row["trial"] for row in trials_table(project)] == ["1", "2", "3", "4", "5"]


def test_a_worker_killed_mid_search_stops_the_stage_and_the_search_resumes(
    project: Path,
) -> None:
    stage = tune(project)
    deadline = time.monotonic() + 300
    killed = None
    while killed is None and time.monotonic() < deadline and stage.poll() is None:
        searches = list((project / "models" / "tuner").glob("*/oracle.json"))
        if searches and read_trials(searches[0].parent):
            for child in psutil.Process(stage.pid).children(recursive=True):
                try:
                    if child.environ().get("KERASTUNER_TUNER_ID") == "tuner1":
                        child.kill()
                        killed = child.pid
                except psutil.NoSuchProcess:
                    continue
        time.sleep(0.2)
    assert killed, "worker tuner1 was never seen running"
    code, _, err = finish(stage)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert_says(last, "worker tuner1", "-9", "rerun `dvc repro tune`")

    code, out, err = finish(tune(project))
    assert code == 0, err
    assert "resuming with" in out
    assert [row["trial"] for row in trials_table(project)] == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KERASTUNER_TUNER_ID": "remote1"},
            "error: KERASTUNER_TUNER_ID=remote1 makes this process a tuning worker, but "
            "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (the chief's address) are not both",
        ),
        (
            {"KERASTUNER_ORACLE_IP": "127.0.0.1"},
            "error: KERASTUNER_ORACLE_IP is set but KERASTUNER_ORACLE_PORT is not",
        ),
        (
            {"KERASTUNER_ORACLE_PORT": "8000"},
            "error: KERASTUNER_ORACLE_PORT is set but KERASTUNER_ORACLE_IP is not",
        ),
        (
            {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "eighty"},
            "error: KERASTUNER_ORACLE_PORT='eighty' is not a port number in [1, 65535]",
        ),
        (  # a chief (or the stage that starts one) checks its own address
            {"KERASTUNER_ORACLE_IP": "0.0.0.0", "KERASTUNER_ORACLE_PORT": "8000"},
            "error: refusing to serve the search's oracle on KERASTUNER_ORACLE_IP=0.0.0.0: not a "
            "loopback or private address",
        ),
        (  # a worker checks the chief's
            {
                "KERASTUNER_TUNER_ID": "remote1",
                "KERASTUNER_ORACLE_IP": "8.8.8.8",
                "KERASTUNER_ORACLE_PORT": "8000",
            },
            "error: refusing to join the chief at KERASTUNER_ORACLE_IP=8.8.8.8: not a loopback",
        ),
    ],
)
def test_an_incomplete_distributed_environment_is_one_clear_error(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    stage_project(tmp_path, {}, TINY_TUNER)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    result = subprocess.run(
        stage_command("tune"), cwd=tmp_path, env={**clean, **env}, capture_output=True,
        text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists(), "nothing is written"


def recipe_block(containing: str) -> str:
    """The bash block of docs/scaling.md (the multi-machine recipe) that contains
    `containing`, as one command line."""
    text = (REPO / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    (block,) = [block for block in blocks if containing in block]
    return block.replace("\\\n", " ").strip()


@pytest.mark.e2e
def test_the_documented_multi_machine_recipe_runs_on_loopback(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The chief in one clone, a worker started from a second clone, both exactly as
    docs/scaling.md's commands say (addresses filled in); the chief runs no worker, so the remote
    worker runs every trial."""
    port = str(free_port("127.0.0.1"))
    clones = []
    for name in ("chief", "remote"):
        clone = copy_project(tmp_path_factory.mktemp(name))
        params = read_yaml(clone / "params.yaml")
        params["tuner"].update(max_trials=3, workers=0)
        write_yaml(clone / "params.yaml", params)
        clones.append(clone)
    chief_command = recipe_block("dvc repro tune").replace("<this machine's IP>", "127.0.0.1")
    worker_command = recipe_block("KERASTUNER_TUNER_ID=remote1").replace("<chief IP>", "127.0.0.1")
    assert chief_command.startswith("KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000")
    assert worker_command.split("python ", 1)[1].split() == STAGES_TUNE_CMD.split()[1:]

    def start(clone: Path, command: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", "-c", command.replace("8000", port)], cwd=clone, env=dvc_env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    chief = start(clones[0], chief_command)
    run(clones[1], "dvc", "repro", "prepare")
    worker = start(clones[1], worker_command)
    worker_out, _ = worker.communicate(timeout=600)
    chief_out, _ = chief.communicate(timeout=600)
    assert worker.returncode == 0, worker_out
    assert chief.returncode == 0, chief_out
    assert worker_out.count("tune: remote1 finished trial") == 3, worker_out
    assert f"chief serving the oracle on 127.0.0.1:{port}; starting 0 workers" in chief_out
    tune = json.loads((clones[0] / "metrics" / "tune.json").read_text())
    assert tune["trials"] == 3
    assert not (clones[1] / "metrics" / "tune.json").exists(), "a worker writes no outputs"
