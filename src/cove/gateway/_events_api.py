"""``GET /api/v1/events``: the scheduler's decisions and their reasons, for the caller's workspace.

A member reads its own workspace's events; an admin token reads the
cluster's own events (workers joining, drains, the scheduler lease) too.
Following is polling with a cursor: each answer's ``cursor`` passed back as
``since`` returns only what was recorded after it, so ``cove events --follow``
needs no open connection (and never holds up a server shutdown).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from .._wire import api as wire
from ..store import Event, list_events
from ._deps import GatewayDep, PrincipalDep

router = APIRouter(prefix="/api/v1")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _view(row: Event) -> dict[str, Any]:
    inputs = dict(row.inputs or {})
    version = inputs.pop("version", None)
    return {
        "id": row.id,
        "ts": row.ts,
        "kind": row.kind,
        "deployment": row.deployment,
        "version": version if isinstance(version, int) else None,
        "reason": row.reason,
        "inputs": inputs,
    }


@router.get("/events", response_model=wire.EventPage, summary="Control-plane events of this workspace, oldest first")
async def events(
    gw: GatewayDep,
    who: PrincipalDep,
    deployment: Annotated[str | None, Query(max_length=63)] = None,
    since: Annotated[int | None, Query(ge=0, le=2**62, description="a cursor: only events after it")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The newest ``limit`` events, or with ``since`` the first ``limit`` recorded after that cursor."""
    rows = await list_events(
        gw.store,
        who.workspace_id,
        cluster=who.role == "admin",
        deployment=deployment,
        after=since,
        limit=limit,
    )
    cursor = rows[-1].id if rows else (since or 0)
    return {"events": [_view(row) for row in rows], "cursor": cursor}
