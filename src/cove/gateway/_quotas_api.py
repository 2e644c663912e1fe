"""``/api/v1/workspaces/{name}/quota``: per-workspace limits on containers, cpu and GPUs.

Anyone may read their own workspace's quota; only an admin sets one. The
deploy route calls :func:`check_deploy_quota` so a deployment whose minimum
can never fit is refused before anything is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from .._config import DeploymentConfig
from ..scheduler._quotas import Quota, check_floor
from ..store import NotFound, Principal, delete_quota, get_quota, put_quota
from ._deps import AdminDep, GatewayDep, PrincipalDep
from ._errors import ApiError
from ._state import Gateway

router = APIRouter(prefix="/api/v1")


class QuotaRequest(BaseModel):
    max_containers: int | None = Field(default=None, ge=0, le=100_000)
    max_cpu_millis: int | None = Field(default=None, ge=0, le=100_000_000)
    max_gpus: int | None = Field(default=None, ge=0, le=100_000)


async def _workspace_id(gw: Gateway, who: Principal, name: str) -> str:
    if name != who.workspace_name and who.role != "admin":
        raise ApiError(403, "only an admin token can see or change another workspace's quota")
    try:
        return (await gw.store.get_workspace(name)).id
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None


def _view(name: str, quota: Quota | None, gw: Gateway, workspace_id: str) -> dict[str, Any]:
    usage = {"containers": 0, "cpu_millis": 0}
    for pool in gw.scheduler.pools.values():
        if pool.deployment.workspace_id != workspace_id:
            continue
        for slot in pool.slots.values():
            if slot.state in ("pending", "listening", "ready"):
                usage["containers"] += 1
                usage["cpu_millis"] += pool.config.cpu_millis
    return {"workspace": name, **(quota or Quota()).to_dict(), "usage": usage}


@router.get("/workspaces/{name}/quota", summary="A workspace's limits and what its containers use now")
async def show_quota(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    return _view(name, gw.scheduler.quotas.get(workspace_id), gw, workspace_id)


@router.put("/workspaces/{name}/quota", summary="Set a workspace's limits (fields left out or null: no limit)")
async def set_quota(name: str, body: QuotaRequest, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    quota = Quota(body.max_containers, body.max_cpu_millis, body.max_gpus)
    if quota.unlimited:
        await delete_quota(gw.store, workspace_id, who)
        gw.scheduler.set_quota(workspace_id, None)
    else:
        await put_quota(gw.store, workspace_id, **quota.to_dict(), who=who)
        gw.scheduler.set_quota(workspace_id, quota)
    return _view(name, quota, gw, workspace_id)


@router.delete("/workspaces/{name}/quota", summary="Remove a workspace's limits")
async def remove_quota(name: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    await delete_quota(gw.store, workspace_id, who)
    gw.scheduler.set_quota(workspace_id, None)
    return _view(name, None, gw, workspace_id)


async def check_deploy_quota(gw: Gateway, who: Principal, config: DeploymentConfig) -> None:
    """Refuse (403) a deployment whose minimum number of containers can never fit the workspace quota."""
    quota = gw.scheduler.quotas.get(who.workspace_id)
    if quota is None:
        row = await get_quota(gw.store, who.workspace_id)
        quota = Quota(row.max_containers, row.max_cpu_millis, row.max_gpus) if row else None
    if quota is None:
        return
    reason = check_floor(quota, config)
    if reason:
        raise ApiError(403, f"workspace {who.workspace_name!r} quota exceeded: {reason}", "QuotaExceeded")
