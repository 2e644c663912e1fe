"""Retry a task that failed: its input, accepted again as a new task of the deployment's live version.

The failed task stays as it was (its attempts and traceback are the record of what
went wrong); the retry is a new task with a new id, so ``cove task show`` of either
tells the whole story, and the audit log links the two. It runs on the version that
serves the name now: the usual way to retry is after deploying a fix.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .._wire import api as wire
from ..store import Principal, get_task, record_audit
from ._deps import GatewayDep, PrincipalDep
from ._errors import ApiError
from ._functions_api import _submit, task_deployment
from ._state import Gateway

router = APIRouter()

# A task that ended without a result may run again; one that completed, or is still open, may not.
RETRYABLE_STATES = frozenset({"FAILED", "CANCELLED", "EXPIRED"})


async def _input_of(gw: Gateway, who: Principal, task_id: str) -> tuple[str, str, str, bytes]:
    """(deployment name, state, format, payload) of the caller's task; 404 when there is none in its workspace."""
    item = gw.scheduler.dispatcher.find(task_id)
    mine = item is not None and item.deployment is not None and item.deployment.workspace_id == who.workspace_id
    # The dispatcher's copy is newer than the row (an open task, a call not yet written); its input is the same.
    if mine and item is not None and (item.args or item.state not in RETRYABLE_STATES):
        return item.deployment.name, item.state, item.fmt, item.args
    row = await get_task(gw.store, task_id)
    if row is None or row.workspace_id != who.workspace_id:
        raise ApiError(404, f"no task {task_id!r}")
    return row.name, row.state, row.format, row.args


@router.post(
    "/api/v1/tasks/{task_id}/retry",
    status_code=202,
    summary="Run a failed, cancelled or expired task's input again, as a new task",
    response_model=wire.TaskRetried,
)
async def retry_task(task_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    name, state, fmt, payload = await _input_of(gw, who, task_id)
    if state not in RETRYABLE_STATES:
        raise ApiError(409, f"task {task_id} is {state}: only a FAILED, CANCELLED or EXPIRED task can be retried")
    deployment = await task_deployment(gw, who, name, None)
    [item] = await _submit(gw, deployment, [(fmt, payload)], durable=True)
    await record_audit(gw.store, who, "task.retry", task_id, {"task_id": item.id, "version": deployment.version})
    return {"task_id": item.id, "retried_from": task_id, "version": deployment.version}
