"""``/api/v1/apps``: apps, and the ephemeral apps of scripts' runs with their heartbeats.

``cove deploy app.py`` deploys a file's functions into one app; a deployment's
live version belongs to one app, and another app deploying that name is
refused unless it says ``replace`` (``Store.create_deployment``). A script that
calls a function nobody deployed (``python script.py``) makes an ephemeral app
here, deploys into it, and sends a heartbeat every few seconds; it deletes the
app on its way out, and the gateway that leads stops any ephemeral app whose
heartbeats stopped for ``app_heartbeat_timeout`` seconds (:func:`reap_forever`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from .._wire import api as wire
from ..exceptions import Conflict
from ..store import App, Principal, create_app, find_app, heartbeat_app, list_apps, stop_app
from ..store import stale_ephemeral_apps as stale_apps
from ._body import RequestBody
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._state import Gateway

log = logging.getLogger("cove.gateway")
router = APIRouter(prefix="/api/v1")

APP_NAME = r"^[^/\x00-\x1f]{1,100}$"  # a folder's name (the default) or App("..."): no slash, no control characters
AppRef = Annotated[str, Path(description="The app's id or name", json_schema_extra={"pattern": APP_NAME})]


class AppRequest(RequestBody):
    name: str = Field(pattern=APP_NAME, description="Unique in the workspace")
    ephemeral: bool = Field(default=False, description="A script's run: kept alive by heartbeats, then stopped")
    source: str | None = Field(default=None, max_length=4096, description="Where it is deployed from (a path)")


def _view(gw: Gateway, row: App, names: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "ephemeral": row.ephemeral,
        "source": row.source,
        "created_at": row.created_at,
        "heartbeat_at": row.heartbeat_at,
        "heartbeat_timeout": gw.settings.app_heartbeat_timeout if row.ephemeral else None,
        "stopped_at": row.stopped_at,
        "deployments": names,
    }


async def _views(gw: Gateway, rows: list[App]) -> list[dict[str, Any]]:
    """Each app with the names whose live (newest active) version belongs to it."""
    if not rows:
        return []
    owner: dict[str, str] = {}
    for dep in await gw.store.list_deployments(rows[0].workspace_id):  # active ones, by name and version
        owner[dep.name] = dep.app_id
    live: dict[str, list[str]] = {row.id: [] for row in rows}
    for name, app_id in sorted(owner.items()):
        if app_id in live:
            live[app_id].append(name)
    return [_view(gw, row, live[row.id]) for row in rows]


async def _app(gw: Gateway, who: Principal, ref: str) -> App:
    row = await find_app(gw.store, who.workspace_id, ref)
    if row is None:
        raise ApiError(404, f"app {ref!r} does not exist")
    return row


@router.post("/apps", status_code=201, response_model=wire.AppView)
async def create(body: AppRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    try:
        row = await create_app(gw.store, who, body.name, ephemeral=body.ephemeral, source=body.source)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return _view(gw, row, [])


@router.get("/apps", response_model=list[wire.AppView])
async def list_all(gw: GatewayDep, who: PrincipalDep, all: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
    return await _views(gw, list(await list_apps(gw.store, who.workspace_id, include_stopped=all)))


@router.get("/apps/{app}", response_model=wire.AppView)
async def get(app: AppRef, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    [view] = await _views(gw, [await _app(gw, who, app)])
    return view


@router.post("/apps/{app}/heartbeat", response_model=wire.AppHeartbeat)
async def heartbeat(app: AppRef, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    row = await _app(gw, who, app)
    if not row.ephemeral:
        raise ApiError(409, f"app {row.name!r} is not ephemeral: it needs no heartbeat")
    at = await heartbeat_app(gw.store, who.workspace_id, row.id)
    if at is None:
        raise ApiError(404, f"app {row.name!r} has ended")
    return {"id": row.id, "name": row.name, "heartbeat_at": at}


@router.delete("/apps/{app}", response_model=wire.AppStopped)
async def stop(app: AppRef, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    row = await _app(gw, who, app)
    stopped = await _stop(gw, who, row, "stopped by its client" if row.ephemeral else "stopped by user")
    return {"id": row.id, "name": row.name, "stopped": stopped}


async def _stop(gw: Gateway, who: Principal | None, row: App, reason: str) -> list[str]:
    rows = await stop_app(gw.store, who, row, reason)
    gw.scheduler.stop_deployment([r.id for r in rows], reason=f"app {row.name!r} {reason}")
    gw.deployments.invalidate()
    return [f"{r.name}/v{r.version}" for r in rows]


async def reap_once(gw: Gateway) -> int:
    """Stop the ephemeral apps whose heartbeats stopped; returns how many."""
    timeout = gw.settings.app_heartbeat_timeout
    stale = await stale_apps(gw.store, time.time() - timeout)
    for row in stale:
        stopped = await _stop(gw, None, row, f"lost its client: no heartbeat for {timeout:g} s")
        log.info("stopped ephemeral app %s (%s): no heartbeat for %g s", row.name, ", ".join(stopped), timeout)
    return len(stale)


async def reap_forever(gw: Gateway) -> None:
    """The leader's loop over :func:`reap_once`, a few times per timeout."""
    interval = min(5.0, max(0.5, gw.settings.app_heartbeat_timeout / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            await reap_once(gw)
        except Exception:
            log.exception("stopping ephemeral apps without heartbeat failed")
