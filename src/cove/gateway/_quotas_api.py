"""``/api/v1/workspaces/{name}/quota``: per-workspace limits on containers, cpu, GPUs and disk.

Anyone may read their own workspace's quota; only an admin sets one. A
workspace without a quota of its own runs under the operator's default
(``COVE_DEFAULT_QUOTA``). The deploy route calls :func:`check_deploy_quota`
so a deployment the quota can never run is refused before anything is stored, and
the upload routes call :func:`check_disk_quota` before an upload becomes
visible.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from cove._host.volumes import volumes_root

from .._wire import api as wire
from .._wire.config import DeploymentConfig
from ..exceptions import NotFound
from ..scheduler import LIMITS, Quota, check_disk, check_floor, check_one, stored_config
from ..store import Principal, code_bytes, delete_quota, get_quota, live_containers, put_quota, quota_limits
from ._blob_paths import blobs_root
from ._body import RequestBody
from ._deps import AdminDep, GatewayDep, PrincipalDep
from ._errors import ApiError
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

DISK_KINDS = ("volume", "code", "blob")


def _limit_field(name: str) -> Any:
    return Field(default=None, ge=0, le=LIMITS[name])


class QuotaRequest(RequestBody):
    """Every limit of a workspace; one left out or null has no limit. Unknown fields are refused."""

    max_containers: int | None = _limit_field("max_containers")
    max_cpu_millis: int | None = _limit_field("max_cpu_millis")
    max_gpus: int | None = _limit_field("max_gpus")
    max_volume_bytes: int | None = _limit_field("max_volume_bytes")
    max_code_bytes: int | None = _limit_field("max_code_bytes")
    max_blob_bytes: int | None = _limit_field("max_blob_bytes")


async def _workspace_id(gw: Gateway, who: Principal, name: str) -> str:
    if name != who.workspace_name and who.role != "admin":
        raise ApiError(403, "only an admin token can see or change another workspace's quota")
    try:
        return (await gw.store.get_workspace(name)).id
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None


async def _view(name: str, gw: Gateway, workspace_id: str) -> dict[str, Any]:
    if gw.cluster.leading:
        usage = _live_usage(gw, workspace_id)
        quota = gw.scheduler.quota_of(workspace_id)
        own = workspace_id in gw.scheduler.quotas
    else:  # every gateway answers: the limits and the containers as the leader last wrote them to the store
        usage = await _stored_usage(gw, workspace_id)
        row = await get_quota(gw.store, workspace_id)
        quota = Quota.from_dict(quota_limits(row)) if row else gw.scheduler.default_quota
        own = row is not None
    disk = {f"{kind}_bytes": await disk_used(gw, workspace_id, kind) for kind in DISK_KINDS}
    return {"workspace": name, **quota.to_dict(), "default": not own, "usage": usage, "disk": disk}


def _live_usage(gw: Gateway, workspace_id: str) -> dict[str, int]:
    """The containers the leader's scheduler holds for the workspace now, and their cpu."""
    usage = {"containers": 0, "cpu_millis": 0}
    for pool in gw.scheduler.pools.values():
        if pool.deployment.workspace_id != workspace_id:
            continue
        for slot in pool.slots.values():
            if slot.state in ("pending", "listening", "ready"):
                usage["containers"] += 1
                usage["cpu_millis"] += pool.config.cpu_millis
    return usage


async def _stored_usage(gw: Gateway, workspace_id: str) -> dict[str, int]:
    """The same, from the containers' rows (the leader writes each one's state behind it)."""
    usage = {"containers": 0, "cpu_millis": 0}
    for deployment_id, count in (await live_containers(gw.store, workspace_id)).items():
        deployment = await gw.store.get_deployment_by_id(deployment_id)
        if deployment is not None:
            usage["containers"] += count
            usage["cpu_millis"] += count * stored_config(deployment).cpu_millis
    return usage


@router.get(
    "/workspaces/{name}/quota", summary="A workspace's limits and what it uses now", response_model=wire.QuotaView
)
async def show_quota(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    return await _view(name, gw, workspace_id)


@router.put(
    "/workspaces/{name}/quota",
    summary="Set a workspace's limits (fields left out or null: no limit)",
    response_model=wire.QuotaView,
)
async def set_quota(name: str, body: QuotaRequest, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    quota = Quota(**body.model_dump())
    await put_quota(gw.store, workspace_id, quota.to_dict(), who=who)
    gw.scheduler.set_quota(workspace_id, quota)
    return await _view(name, gw, workspace_id)


@router.delete(
    "/workspaces/{name}/quota",
    summary="Remove a workspace's own limits: the default quota applies",
    response_model=wire.QuotaView,
)
async def remove_quota(name: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    workspace_id = await _workspace_id(gw, who, name)
    await delete_quota(gw.store, workspace_id, who)
    gw.scheduler.set_quota(workspace_id, None)
    return await _view(name, gw, workspace_id)


async def _quota(gw: Gateway, workspace_id: str) -> Quota:
    """The workspace's limits: the scheduler's copy, else its row, else the default quota."""
    quota = gw.scheduler.quotas.get(workspace_id)
    if quota is not None:
        return quota
    row = await get_quota(gw.store, workspace_id)
    return Quota.from_dict(quota_limits(row)) if row else gw.scheduler.default_quota


async def check_deploy_quota(gw: Gateway, who: Principal, config: DeploymentConfig) -> None:
    """Refuse a deployment that its workspace's quota can never run.

    422 when one container is larger than the workspace quota (the spec itself
    is impossible here; one larger than every worker is ``check_capacity``'s);
    403 when its ``min_containers`` floor passes the quota.
    """
    quota = await _quota(gw, who.workspace_id)
    too_big = check_one(quota, config)
    if too_big:
        raise ApiError(422, f"workspace {who.workspace_name!r}: {too_big}")
    reason = check_floor(quota, config)
    if reason:
        raise ApiError(403, f"workspace {who.workspace_name!r} quota exceeded: {reason}", "QuotaExceeded")


def _folder_bytes(folder: Path) -> int:
    """The size of every file below ``folder``, never following a symlink (a container may plant them)."""
    total = 0
    pending = [str(folder)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


async def disk_used(gw: Gateway, workspace_id: str, kind: str) -> int:
    """Bytes of ``kind`` (volume, code or blob) the workspace holds now."""
    if kind == "code":
        return await code_bytes(gw.store, workspace_id)
    root = gw.settings.home.root
    folder = volumes_root(root) if kind == "volume" else blobs_root(root)
    return await asyncio.to_thread(_folder_bytes, folder / workspace_id)


async def check_disk_quota(gw: Gateway, who: Principal, kind: str, adding: int) -> None:
    """Refuse (413, ``QuotaExceeded``) an upload of ``adding`` bytes that would pass the workspace's disk limit.

    Upload routes call this before the upload becomes visible, so a refused one leaves nothing behind.
    """
    quota = await _quota(gw, who.workspace_id)
    if getattr(quota, f"max_{kind}_bytes") is None:
        return
    reason = check_disk(quota, kind, await disk_used(gw, who.workspace_id, kind), adding)
    if reason:
        raise ApiError(413, f"workspace {who.workspace_name!r}: {reason}", "QuotaExceeded")
