"""``GET /api/v1/deployments/{name}/history``: the last hour the dashboard charts, from ``_history``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from .._wire import api as wire
from ..exceptions import NotFound
from ..store import list_workspaces
from ._background import running
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._history import MetricsHistory, Ring
from ._state import Gateway


@contextlib.asynccontextmanager
async def _keep_history(app: Any) -> AsyncIterator[None]:
    """While the gateway runs (inside its own lifespan, once ``app.state.gateway`` exists): fill the history."""
    async with running(start(app.state.gateway, app.state)):
        yield


# Every gateway keeps the last hour of what it served; FastAPI runs this router's lifespan inside the app's.
router = APIRouter(prefix="/api/v1", lifespan=_keep_history)


def start(gw: Gateway, state: Any) -> asyncio.Task[None]:
    """A new history in ``state.history`` (the app's state, where the route finds it) and the task that fills it."""
    history = state.history = MetricsHistory(gw.metrics.invocations, gw.metrics.latency)
    names: dict[str, str] = {}

    async def containers() -> list[tuple[str, str, str]]:
        pools = list(gw.scheduler.pools.values())
        if any(p.deployment.workspace_id not in names for p in pools):  # a workspace made since: read them again
            names.update({w.id: w.name for w in await list_workspaces(gw.store)})
        return [
            (names.get(p.deployment.workspace_id, "-"), p.deployment.name, slot_id)
            for p in pools
            for slot_id in list(p.slots)
        ]

    return asyncio.create_task(history.run(containers), name="cove-metrics-history")


@router.get(
    "/deployments/{name}/history",
    summary="The last hour of a deployment's requests/s, p50/p99 latency, errors and cold starts (10 s buckets)",
    response_model=wire.DeploymentHistory,
)
async def deployment_history(name: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    history: MetricsHistory = request.app.state.history
    view = history.get(who.workspace_name, name)
    if view is None:  # nothing counted yet: an empty hour, if the name exists in the caller's workspace
        try:
            await gw.deployments.get(who.workspace_id, name, None)
        except NotFound:
            raise ApiError(404, f"no deployment named {name!r}") from None
        view = Ring().view(time.time())
    return {"name": name, **view}
