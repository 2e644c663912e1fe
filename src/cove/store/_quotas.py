"""Workspace quotas as rows: one per workspace that has limits."""

from __future__ import annotations

import time

from sqlalchemy import select

from . import _models as m
from ._store import Principal, Store


async def get_quota(store: Store, workspace_id: str) -> m.WorkspaceQuota | None:
    async with store.session() as s:
        return await s.get(m.WorkspaceQuota, workspace_id)


async def all_quotas(store: Store) -> list[m.WorkspaceQuota]:
    async with store.session() as s:
        return list((await s.scalars(select(m.WorkspaceQuota))).all())


async def put_quota(
    store: Store,
    workspace_id: str,
    *,
    max_containers: int | None,
    max_cpu_millis: int | None,
    max_gpus: int | None,
    who: Principal | None = None,
) -> m.WorkspaceQuota:
    """Replace a workspace's limits (every field, so a limit left out is removed), audited."""
    async with store.session() as s, s.begin():
        limits = {"max_containers": max_containers, "max_cpu_millis": max_cpu_millis, "max_gpus": max_gpus}
        Store._audit(s, who, "quota.set", workspace_id, limits, workspace_id)
        row = await s.get(m.WorkspaceQuota, workspace_id)
        if row is None:
            row = m.WorkspaceQuota(workspace_id=workspace_id)
            s.add(row)
        row.max_containers = max_containers
        row.max_cpu_millis = max_cpu_millis
        row.max_gpus = max_gpus
        row.updated_at = time.time()
    return row


async def delete_quota(store: Store, workspace_id: str, who: Principal | None = None) -> bool:
    async with store.session() as s, s.begin():
        row = await s.get(m.WorkspaceQuota, workspace_id)
        if row is None:
            return False
        await s.delete(row)
        Store._audit(s, who, "quota.remove", workspace_id, None, workspace_id)
    return True
