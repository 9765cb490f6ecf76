"""Canary for the Keras Tuner internals `digits.oracle` relies on: an upgrade that changes any of
them fails here, loudly, before it silently changes what a resumed search proposes."""

from __future__ import annotations

import inspect
import json
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner as kt
import pytest

from digits import oracle
from digits.errors import DigitsError
from tests.helpers import assert_says


def test_keras_tuner_is_the_pinned_version() -> None:
    assert kt.__version__ == oracle.PINNED_VERSION, (
        "keras-tuner changed: re-check every internal digits/oracle.py uses, then update "
        "PINNED_VERSION and the pin in pyproject.toml"
    )


def test_bayesian_oracle_draws_its_restarts_from_random_state() -> None:
    source = inspect.getsource(kt.oracles.BayesianOptimizationOracle)
    assert "self._random_state" in source
    assert "def populate_space(self, trial_id)" in source


def test_random_proposals_come_from_random_values() -> None:
    """The FLOPs cap filters `_random_values`: every random proposal must go through it, and
    Bayesian optimization must fall back on `_random_populate_space` before its GP."""
    random_search = inspect.getsource(kt.oracles.RandomSearchOracle.populate_space)
    assert "self._random_values()" in random_search
    bayesian = inspect.getsource(kt.oracles.BayesianOptimizationOracle)
    assert "return self._random_populate_space()" in bayesian
    assert "values = self._random_values()" in bayesian
    assert "_random_values" in dict(inspect.getmembers(kt.Oracle))


def test_reload_fills_trials_from_trial_files_in_glob_order() -> None:
    source = inspect.getsource(kt.Oracle.reload)
    assert '"trial_*", "trial.json"' in source
    assert "self.trials[trial.trial_id] = trial" in source


def test_trials_load_from_their_files(tmp_path: Path) -> None:
    trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id="3", status="COMPLETED")
    trial.score = 0.5
    (tmp_path / "trial_3").mkdir()
    (tmp_path / "trial_3" / "trial.json").write_text(json.dumps(trial.get_state()))
    (tmp_path / "trial_4").mkdir()
    (tmp_path / "trial_4" / "trial.json").write_text('{"half written')
    assert [t.trial_id for t in oracle.read_trials(tmp_path)] == ["3"]


def _write_trials(project: Path) -> None:
    """A completed trial, a running one, one without a score, one caught mid-write and one
    that is JSON but not a trial."""
    for trial_id, status, score in [("0", "COMPLETED", 0.9), ("1", "RUNNING", None),
                                    ("2", "COMPLETED", None)]:  # fmt: skip
        trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id=trial_id, status=status)
        trial.score = score
        (project / f"trial_{trial_id}").mkdir()
        (project / f"trial_{trial_id}" / "trial.json").write_text(json.dumps(trial.get_state()))
    (project / "trial_3").mkdir()
    (project / "trial_3" / "trial.json").write_text('{"status": "COMPL')
    (project / "trial_4").mkdir()
    (project / "trial_4" / "trial.json").write_text("null")


def test_counting_trials_agrees_with_loading_them(tmp_path: Path) -> None:
    _write_trials(tmp_path)
    assert oracle.count_completed_trials(tmp_path) == len(oracle.read_trials(tmp_path)) == 1


def test_loading_a_trial_draws_from_global_random_and_counting_does_not(tmp_path: Path) -> None:
    """Why `count_completed_trials` exists: a watcher thread calling `Trial.load` shifted the
    weights of the model training beside it (benchmarks/tune_trials.py, 2026-11-30)."""
    _write_trials(tmp_path)
    before = random.getstate()
    oracle.count_completed_trials(tmp_path)
    assert random.getstate() == before
    oracle.read_trials(tmp_path)
    assert random.getstate() != before


@pytest.mark.parametrize(
    ("env", "role"),
    [
        ({}, None),
        ({"KERASTUNER_TUNER_ID": "chief"}, "chief"),
        ({"KERASTUNER_TUNER_ID": "tuner0"}, "worker"),
    ],
)
def test_roles_follow_keras_tuner_s_environment_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], role: str | None
) -> None:
    for name in (oracle.TUNER_ID, oracle.ORACLE_IP, oracle.ORACLE_PORT):
        monkeypatch.delenv(name, raising=False)
    if env:
        monkeypatch.setenv(oracle.ORACLE_IP, "127.0.0.1")
        monkeypatch.setenv(oracle.ORACLE_PORT, "8000")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert oracle.role() == role
    assert oracle.is_worker() == (role == "worker")


def test_end_trial_saves_before_it_drops_the_ongoing_trial_and_reload_retries_ongoing() -> None:
    """Why `ResumableBayesianOracle` saves after `end_trial` and filters the retry queue."""
    source = inspect.getsource(kt.Oracle)  # `end_trial` itself is wrapped by `synchronized`
    end_trial = source[source.index("def end_trial(self, trial):") :].split("\n    def ")[0]
    assert end_trial.index("self.save()") < end_trial.index("self.ongoing_trials.pop(")
    reload = inspect.getsource(kt.Oracle.reload)
    assert "self._retry_queue.append(trial.trial_id)" in reload
    assert "def wrapped_func" in inspect.getsource(oracle.oracle_module.synchronized)


@pytest.mark.parametrize(
    ("host", "resolved"),
    [
        ("127.0.0.1", None),  # loopback
        ("::1", None),
        ("10.0.0.7", None),  # private networks
        ("192.168.1.20", None),
        ("fd12:3456::1", None),
        ("localhost", None),  # a hostname, resolved for real
        ("chief.lan", ["192.168.1.20", "fd12:3456::1"]),  # a hostname, every address private
    ],
)
def test_a_loopback_or_private_oracle_address_is_accepted(
    monkeypatch: pytest.MonkeyPatch, host: str, resolved: list[str] | None
) -> None:
    if resolved is not None:
        monkeypatch.setattr(socket, "getaddrinfo", _resolves_to(host, resolved))
    for worker in (False, True):
        oracle.check_oracle_address(host, allow_public=False, worker=worker)


@pytest.mark.parametrize(
    ("host", "resolved", "named"),
    [
        ("0.0.0.0", None, "KERASTUNER_ORACLE_IP=0.0.0.0:"),  # every interface
        ("::", None, "KERASTUNER_ORACLE_IP=::"),
        ("8.8.8.8", None, "KERASTUNER_ORACLE_IP=8.8.8.8:"),  # public
        ("2001:4860::8888", None, "KERASTUNER_ORACLE_IP=2001:4860::8888:"),
        ("chief.example.com", ["10.0.0.7", "8.8.4.4"], "chief.example.com (8.8.4.4):"),
    ],
)
def test_a_public_oracle_address_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, host: str, resolved: list[str] | None, named: str
) -> None:
    if resolved is not None:
        monkeypatch.setattr(socket, "getaddrinfo", _resolves_to(host, resolved))
    actions = {False: "to serve the search's oracle on", True: "to join the chief at"}
    for worker, action in actions.items():
        with pytest.raises(DigitsError) as refused:
            oracle.check_oracle_address(host, allow_public=False, worker=worker)
        message = str(refused.value)
        assert message.startswith(f"refusing {action} ") and named in message
        assert "no authentication" in message and "SSH tunnel" in message
        assert message.endswith("set tuner.allow_public_oracle: true to accept that")
        oracle.check_oracle_address(host, allow_public=True, worker=worker)  # allowed


def test_an_oracle_hostname_that_does_not_resolve_is_one_error() -> None:
    with pytest.raises(DigitsError) as error:
        oracle.check_oracle_address("no-such-host.invalid", allow_public=False, worker=True)
    assert_says(str(error.value), "KERASTUNER_ORACLE_IP=no-such-host.invalid", "IP address")


def _resolves_to(host: str, addresses: list[str]) -> Callable[..., list]:
    real = socket.getaddrinfo

    def getaddrinfo(name: str, *args: Any, **kwargs: Any) -> list:
        if name != host:
            return real(name, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, 0)) for a in addresses]  # fmt: skip

    return getaddrinfo
