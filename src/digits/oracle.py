"""Every use of Keras Tuner internals, in one place, for the version pinned in pyproject.toml.

- `ResumableBayesianOracle` reseeds `_random_state` per trial and reorders `trials` on reload,
  so a search resumed or split across processes proposes what an uninterrupted one does; it
  saves itself again once `end_trial` has dropped the ended trial from `ongoing_trials`, and on
  reload does not retry a trial whose file says it completed, so a trial reported done is kept.
- `CappedRandomOracle` and `ResumableBayesianOracle` propose only points under the FLOPs cap:
  they override `Oracle._random_values` (rejecting draws over the cap) and, for Bayesian
  optimization, bring the acquisition's optimum under the cap or fall back to
  `_random_populate_space`.
- `read_trials` loads trial files the way `Oracle.reload` does; `count_completed_trials` reads
  their `status` and `score` fields without loading them.
- `check_oracle_address` vets the chief's address: loopback or private unless
  `tuner.allow_public_oracle`, since the oracle's gRPC service has no authentication.
- `role` reads the distributed-tuning environment through `keras_tuner.src.distribute.utils`
  (`has_chief_oracle`, `is_chief_oracle`; not exported by `keras_tuner` itself).

`tests/test_oracle.py` is the canary: it fails when an upgrade changes any of these.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import keras_tuner as kt
import numpy as np
from keras_tuner.src.distribute import utils as distribute_utils
from keras_tuner.src.engine import oracle as oracle_module

from digits.errors import DigitsError

PINNED_VERSION = "1.4.8"
TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"


# Random draws tried for one trial before a cap that (nearly) no point meets is reported.
MAX_CAPPED_DRAWS = 1000
# `within_cap(values)`: `values` itself when its model fits the cap, else a point that does
# (the same with fewer filters), or None.
WithinCap = Callable[[dict[str, Any]], dict[str, Any] | None]


class _CappedDraws:
    """Random proposals limited to the points `within_cap` returns unchanged (rejection
    sampling, so they are uniform over the points under the cap)."""

    def __init__(self, within_cap: WithinCap, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.within_cap = within_cap

    def _random_values(self) -> dict[str, Any] | None:
        for _ in range(MAX_CAPPED_DRAWS):
            values = super()._random_values()
            if values is None or self.within_cap(values) is values:
                return values
        raise DigitsError(
            f"params.yaml: tuner.max_mflops_per_image: none of {MAX_CAPPED_DRAWS} random points "
            "of tuner.space fits under the cap; raise the cap or narrow the space"
        )


class CappedRandomOracle(_CappedDraws, kt.oracles.RandomSearchOracle):
    """Keras Tuner's random search over the points under the FLOPs cap."""


class ResumableBayesianOracle(_CappedDraws, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimization under the FLOPs cap whose proposals do not depend on how often the
    search was resumed.

    Keras Tuner draws the acquisition's random restarts from a generator it never saves, and
    reloads trials in filesystem order, so a reloaded search proposes other trials than an
    uninterrupted one. Seeding by trial number and reloading in trial order make the proposal a
    function of the seed and the trials so far. An optimum of the acquisition over the cap is
    brought under it by `within_cap`, or replaced by a random point under it.
    """

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        self._random_state = np.random.RandomState(self.seed + len(self.trials))
        proposal = super().populate_space(trial_id)
        if proposal["values"] is None:
            return proposal
        fitted = self.within_cap(proposal["values"])
        if fitted is None:
            return self._random_populate_space()
        return {**proposal, "values": fitted}

    @oracle_module.synchronized
    def end_trial(self, trial: kt.engine.trial.Trial) -> None:
        """Keras Tuner's `end_trial` saves oracle.json while the ended trial is still listed as
        ongoing and drops it only afterwards. In one process the tuner saves the oracle again
        before the trial is reported; a chief's oracle, ended by a worker over gRPC, is not
        saved again until the next trial starts, so a chief stopped in between (or a finished
        search raised by `max_trials`) would run the reported trial again. Saving here makes
        the end durable before `end_trial` returns to whoever reports it."""
        super().end_trial(trial)
        self.save()

    def reload(self) -> None:
        """Trials are put back in trial order: a Gaussian process fitted to the same trials in
        another row order proposes a slightly different point.

        Keras Tuner sends every trial oracle.json lists as ongoing back for a retry; one whose
        own file says it completed (saved just before oracle.json in `end_trial`) is done and
        stays done."""
        super().reload()
        self.trials = dict(sorted(self.trials.items(), key=lambda item: int(item[0])))
        completed = kt.engine.trial.TrialStatus.COMPLETED
        self._retry_queue = [
            trial_id for trial_id in self._retry_queue
            if self.trials[trial_id].status != completed
        ]  # fmt: skip


def read_trials(project: Path) -> list[kt.engine.trial.Trial]:
    """The completed, scored trials saved in a search's folder, in trial order.

    Safe to call while a chief writes the folder: a trial file caught mid-write is skipped.
    """
    trials = []
    for path in project.glob("trial_*/trial.json"):
        try:
            trial = kt.engine.trial.Trial.load(str(path))
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
        if trial.status == "COMPLETED" and trial.score is not None:
            trials.append(trial)
    return sorted(trials, key=lambda trial: int(trial.trial_id))


def count_completed_trials(project: Path) -> int:
    """How many trial files in `project` say their trial completed with a score: what
    `read_trials` returns, counted without loading the trials, for watching a search from another
    thread or process.

    Unlike `read_trials` it leaves Python's global `random` alone: Keras Tuner's `Trial.load`
    draws a throwaway trial id from it, and Keras draws the seeds of unseeded initializers from
    it, so polling `read_trials` beside a training in the same process changes its weights.
    """
    count = 0
    for path in project.glob("trial_*/trial.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(state, dict) and state.get("status") == "COMPLETED":
            count += state.get("score") is not None
    return count


def role() -> Literal["chief", "worker"] | None:
    """This process's part in a Keras Tuner chief/worker search, from the environment.

    Raises `DigitsError` naming the variable when the environment is incomplete.
    """
    if TUNER_ID not in os.environ:
        return None
    if ORACLE_IP not in os.environ or ORACLE_PORT not in os.environ:
        raise DigitsError(
            f"{TUNER_ID}={os.environ[TUNER_ID]} makes this process a tuning worker, but "
            f"{ORACLE_IP} and {ORACLE_PORT} (the chief's address) are not both set: set them to "
            "the address the chief serves on"
        )
    oracle_address()
    return "chief" if distribute_utils.is_chief_oracle() else "worker"


def oracle_address() -> tuple[str, int] | None:
    """(host, port) from the environment, or None when neither variable is set.

    Raises `DigitsError` when only one is set or the port is not a port number.
    """
    host, port = os.environ.get(ORACLE_IP), os.environ.get(ORACLE_PORT)
    if host is None and port is None:
        return None
    if not host or not port:
        given, missing = (ORACLE_IP, ORACLE_PORT) if host else (ORACLE_PORT, ORACLE_IP)
        raise DigitsError(
            f"{given} is set but {missing} is not: a distributed search needs both the chief's "
            "IP address and its port (for example 127.0.0.1 and 8000)"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DigitsError(f"{ORACLE_PORT}={port!r} is not a port number in [1, 65535]")
    return host, int(port)


def check_oracle_address(host: str, allow_public: bool, worker: bool) -> None:
    """Refuse to serve (chief) or join (`worker`) a search's oracle at `host` unless every
    address it stands for is loopback or private, or `allow_public` (`tuner.allow_public_oracle`).

    Keras Tuner's oracle is a gRPC service without authentication or encryption: whoever reaches
    it can read the search and feed it trials. A hostname counts by every address
    `socket.getaddrinfo` resolves it to; the unspecified addresses 0.0.0.0 and :: (every
    interface) count as public. Raises `DigitsError` naming the address and the param.
    """
    if allow_public:
        return
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError) as error:
        raise DigitsError(
            f"{ORACLE_IP}={host} does not resolve to an address ({error}): set it to the "
            "chief's IP address"
        ) from None
    public = sorted(address for address in resolved if not _private(address))
    if public:
        shown = host if public == [host] else f"{host} ({', '.join(public)})"
        action = "to join the chief at" if worker else "to serve the search's oracle on"
        raise DigitsError(
            f"refusing {action} {ORACLE_IP}={shown}: not a loopback or private address, and "
            "Keras Tuner's oracle has no authentication (whoever reaches it can read and steer "
            "the search); use a private network address, or 127.0.0.1 with workers elsewhere "
            "coming through an SSH tunnel, or set tuner.allow_public_oracle: true to accept that"
        )


def _private(address: str) -> bool:
    """Loopback or private (RFC 1918, unique-local, link-local), never 0.0.0.0 or ::."""
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone such as %eth0
    return ip.is_loopback or (ip.is_private and not ip.is_unspecified)


def is_worker() -> bool:
    """True in a worker of a chief/worker search: the chief, not this process, keeps count."""
    return distribute_utils.has_chief_oracle() and not distribute_utils.is_chief_oracle()
