"""Why a caller's work waits, told to the caller: in 503/504 bodies and on a cheap route the SDK polls.

The words are the scheduler's own: the backlog reason that ``cove events``
and ``cove ps`` show (no worker with room, a quota, no worker at all), or,
when nothing blocks placement, what the work waits for now (a container
still starting, every container busy). A waiting caller asks
``GET /api/v1/deployments/{name}/waiting`` (one dictionary walk; the database
only for a name with nothing in memory) and an error that ends a wait carries the reason as
``error.waiting_reason``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from ..exceptions import NotFound
from ..scheduler import Scheduler
from ..store import Deployment
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError

WAITING_FIELD = "waiting_reason"

router = APIRouter(prefix="/api/v1")


class Waiting(BaseModel):
    """Why calls of a deployment wait now; ``reason`` is None when nothing holds them back."""

    deployment: str
    reason: str | None
    since: float | None = None  # when the backlog reason was first set (epoch seconds), if it is one


def waiting_reason(scheduler: Scheduler, deployment: Deployment) -> str | None:
    """Why calls of ``deployment`` (any of its versions' pools in its workspace) wait now, or None."""
    return _reason(scheduler, deployment.workspace_id, deployment.name)[0]


def _reason(scheduler: Scheduler, workspace_id: str, name: str) -> tuple[str | None, float | None]:
    pools = [
        p for p in scheduler.pools.values() if p.deployment.workspace_id == workspace_id and p.deployment.name == name
    ]
    for pool in pools:
        reason = pool.pending_reason or (pool.last_failure if time.time() < pool.retry_after else None)
        if reason:
            return reason, pool.waiting_since
    for pool in pools:
        slots = list(pool.slots.values())
        ready = [s for s in slots if s.state == "ready"]
        starting = [s for s in slots if s.state in ("pending", "listening")]
        queue = scheduler.dispatcher.queues.get(pool.key)
        queued = len(pool.waiters) + (len(queue.ready) if queue is not None else 0)
        # Work handed to a container still loading its code (queued at its socket) waits for it as well.
        if starting and not ready and (queued or pool.in_flight or scheduler.dispatcher.load(pool.key)):
            slot = min(starting, key=lambda s: s.created_at)
            worker = scheduler.workers.get(slot.worker_id)
            where = worker.name if worker is not None else slot.worker_id
            fetching = scheduler.weights_progress(slot)  # bytes of its model weights fetched so far
            return (
                f"container {slot.id} is starting on worker {where}" + (f": {fetching}" if fetching else ""),
                slot.created_at,
            )
        if ready and queued and not any(s.accepting for s in ready):
            return f"all {len(ready)} container(s) are busy; {queued} call(s) wait for one", None
    return None, None


def with_reason(error: ApiError, reason: str | None) -> ApiError:
    """``error`` carrying ``reason`` as its ``waiting_reason`` field (unchanged when there is none)."""
    if reason:
        error.fields[WAITING_FIELD] = reason
    return error


def waited_error(status: int, message: str, reason: str | None, type_: str | None = None) -> ApiError:
    """The error that ends a caller's wait, naming why it waited."""
    return with_reason(ApiError(status, message, type_), reason)


@router.get(
    "/deployments/{name}/waiting",
    response_model=Waiting,
    summary="Why calls of a deployment wait now (the SDK's progress line polls this while a call waits)",
)
async def deployment_waiting(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    reason, since = _reason(gw.scheduler, who.workspace_id, name)
    if reason is None and not _known(gw.scheduler, who.workspace_id, name):
        # Nothing of it in memory: a name this workspace never deployed gets a 404, not "nothing waits".
        try:
            await gw.store.get_deployment(who.workspace_id, name)
        except NotFound:
            raise ApiError(404, f"no deployment named {name!r} in this workspace") from None
    return {"deployment": name, "reason": reason, "since": since}


def _known(scheduler: Scheduler, workspace_id: str, name: str) -> bool:
    return any(
        p.deployment.workspace_id == workspace_id and p.deployment.name == name for p in scheduler.pools.values()
    )
