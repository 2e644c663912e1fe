"""A deployment that no live worker can hold waits for its Kubernetes worker pool instead of being refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cove._wire.config import DeploymentConfig
from cove.scheduler import Scheduler
from cove.scheduler._placement import Request
from cove.scheduler._scheduler import WorkerHandle
from cove.store import Store


async def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no call is made")


def _scheduler(tmp_path: Path) -> Scheduler:
    # fit() reads no table: a store that is never migrated or opened is enough.
    scheduler = Scheduler(Store(f"sqlite+aiosqlite:///{tmp_path}/unused.db"), _never)
    scheduler.workers["w1"] = WorkerHandle(id="w1", name="small", cpu_millis=500, memory_mib=1024, runtime="crun")
    return scheduler


def test_a_deploy_too_big_for_the_live_workers_is_refused_without_a_pool_that_grows(tmp_path: Path) -> None:
    fit = _scheduler(tmp_path).fit(DeploymentConfig.build(cpu=2))
    assert fit.misfit is not None


def test_it_is_accepted_with_a_warning_when_a_pool_will_bring_a_worker_that_holds_it(tmp_path: Path) -> None:
    scheduler = _scheduler(tmp_path)
    asked: list[Request] = []

    def coming(request: Request) -> bool:
        asked.append(request)
        return request.cpu_millis <= 4000

    scheduler.capacity_coming = coming
    fit = scheduler.fit(DeploymentConfig.build(cpu=2))
    assert fit.misfit is None and fit.warning and "worker pool" in fit.warning
    assert asked[0].cpu_millis == 2000
    assert scheduler.fit(DeploymentConfig.build(cpu=8)).misfit is not None  # no pool holds 8 cpus
