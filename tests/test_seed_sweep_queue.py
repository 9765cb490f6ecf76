"""benchmarks/seed_sweep.py reads `dvc queue status`: the worker count decides whether a sweep
starts a worker (two would train two experiments at once)."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.helpers import load_benchmark

# `dvc queue status` as DVC 3 prints it while a sweep runs.
STATUS = """Task     Name                   Created    Status
c6c7878  no-contrast-seed1      06:14 PM   Running
920457e  contrast-noise-seed42  06:26 PM   Queued

Worker status: {active} active, {idle} idle
"""


@pytest.fixture(scope="module")
def seed_sweep() -> ModuleType:
    return load_benchmark("seed_sweep")


@pytest.mark.parametrize(("active", "idle", "count"), [(1, 0, 1), (0, 1, 1), (0, 0, 0), (2, 1, 3)])
def test_workers_counts_active_and_idle_ones(
    seed_sweep: ModuleType, active: int, idle: int, count: int
) -> None:
    assert seed_sweep.workers(STATUS.format(active=active, idle=idle)) == count


def test_status_without_a_worker_line_counts_none(seed_sweep: ModuleType) -> None:
    assert seed_sweep.workers("No experiment tasks in the queue.") == 0
