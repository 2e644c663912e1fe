"""Workspace quotas as rows: one per workspace with limits of its own (others get the default)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy import select

from . import _models as m
from ._store import Principal, Store

# The limit columns of a quota row, in the order the API shows them.
LIMIT_COLUMNS = (
    "max_containers",
    "max_cpu_millis",
    "max_gpus",
    "max_volume_bytes",
    "max_code_bytes",
    "max_blob_bytes",
)


def quota_limits(row: m.WorkspaceQuota) -> dict[str, int | None]:
    """A row's limits by name (None: no limit)."""
    return {name: getattr(row, name) for name in LIMIT_COLUMNS}


async def get_quota(store: Store, workspace_id: str) -> m.WorkspaceQuota | None:
    async with store.session() as s:
        return await s.get(m.WorkspaceQuota, workspace_id)


async def all_quotas(store: Store) -> list[m.WorkspaceQuota]:
    async with store.session() as s:
        return list((await s.scalars(select(m.WorkspaceQuota))).all())


async def put_quota(
    store: Store, workspace_id: str, limits: Mapping[str, int | None], who: Principal | None = None
) -> m.WorkspaceQuota:
    """Replace a workspace's limits (every field, so a limit left out is removed), audited."""
    values = {name: limits.get(name) for name in LIMIT_COLUMNS}
    async with store.session() as s, s.begin():
        Store._audit(s, who, "quota.set", workspace_id, values, workspace_id)
        row = await s.get(m.WorkspaceQuota, workspace_id)
        if row is None:
            row = m.WorkspaceQuota(workspace_id=workspace_id)
            s.add(row)
        for name, value in values.items():
            setattr(row, name, value)
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


async def code_bytes(store: Store, workspace_id: str) -> int:
    """Bytes of code archives the workspace has added to the code store (their upload records)."""
    async with store.session() as s:
        details = await s.scalars(
            select(m.AuditEntry.details).where(
                m.AuditEntry.workspace_id == workspace_id, m.AuditEntry.action == "code.upload"
            )
        )
        return sum(int(d.get("size", 0)) for d in details if isinstance(d, dict))
