"""``GET /api/v1/schedules``: each schedule with its next tick and recent runs (missed ones included)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from .._wire import api as wire
from ..scheduler import next_tick
from ..store import get_task, schedule_runs
from ._deps import GatewayDep, PrincipalDep

router = APIRouter()


@router.get("/api/v1/schedules", response_model=list[wire.ScheduleView])
async def list_schedules(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    out = []
    for deployment in await gw.store.active_schedules():
        if deployment.workspace_id != who.workspace_id:
            continue
        when, timezone = deployment.config["schedule"]
        runs = []
        for run in await schedule_runs(gw.store, who.workspace_id, deployment.name, limit=10):
            task = await get_task(gw.store, run.task_id) if run.task_id else None
            runs.append(
                {
                    "tick": run.tick,
                    "state": run.state,
                    "task_id": run.task_id,
                    "task_state": task.state if task else None,
                }
            )
        out.append(
            {
                "name": deployment.name,
                "version": deployment.version,
                "when": when,
                "timezone": timezone,
                "next_run": next_tick(when, timezone, time.time()),
                "recent_runs": runs,
                "missed": sum(1 for r in runs if r["state"] == "MISSED"),
            }
        )
    return out
