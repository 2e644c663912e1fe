"""Calls of ``@function``s and ``@task_queue``s: ``.remote``, ``.spawn``, ``.map``, puts and task status.

Arguments and results are opaque bytes to the gateway (pickled by the SDK, or
JSON from an HTTP put): it stores and routes them, never unpickles them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from .._wire import api as wire
from .._wire.defaults import stored
from .._wire.kinds import TASK_KINDS
from .._wire.parameters import ParameterError
from ..exceptions import NotFound
from ..scheduler import QueueFull, TaskItem
from ..store import TERMINAL_STATES, Deployment, Principal, Task, get_task, list_tasks
from ._capacity import refuse_unplaceable
from ._deps import GatewayDep, PrincipalDep, read_limited
from ._error_responses import ErrorBody
from ._errors import ApiError
from ._idempotency import KEY_HEADER, accept_keyed, refuse_for_waiting_call, replay_headers
from ._inputs import check_inputs
from ._patterns import Version
from ._request_ids import call_origin
from ._state import Gateway

router = APIRouter()
KeyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        description="Makes a put or spawn safe to send again: a repeat within 24 h returns the first task "
        "(with Idempotent-Replayed: true); the same key with a different body is a 422",
    ),
]


async def task_deployment(gw: Gateway, who: Principal, name: str, version: int | None) -> Deployment:
    try:
        deployment = await gw.deployments.get(who.workspace_id, name, version)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    if deployment.kind not in TASK_KINDS:
        raise ApiError(404, f"{name!r} is a {deployment.kind}, not a function or task queue")
    refuse_unplaceable(gw, deployment)  # every caller submits work: none waits for room no worker has
    return deployment


async def _submit(gw: Gateway, deployment: Deployment, inputs: list[tuple[str, bytes]], **kw: Any) -> list[TaskItem]:
    try:
        return await gw.scheduler.dispatcher.submit(deployment, inputs, **kw)
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    except ParameterError as exc:  # the class's constructor parameters the call names do not fit
        raise ApiError(422, str(exc)) from None


def outcome_parts(item: TaskItem) -> tuple[str, dict[str, str], bytes]:
    """A finished call as (media type, headers, body).

    The body is the result's bytes, or a JSON error carrying the pickled exception.
    """
    headers = {"X-Cove-Call-Id": item.id, "X-Cove-State": item.state}
    if item.state == "COMPLETE":
        media = "application/json" if item.fmt == "json" else "application/octet-stream"
        return media, headers, item.result or b""
    error = dict(item.error or {})
    if item.result:
        error["exception_pickle"] = base64.b64encode(item.result).decode()
    error["attempts"] = item.attempts
    return "application/json", headers, json.dumps({"state": item.state, "error": error}).encode()


def _outcome(item: TaskItem) -> Response:
    media, headers, body = outcome_parts(item)
    return Response(body, media_type=media, headers=headers)


def call_deadline(deployment: Deployment) -> float:
    """How long a waiting caller may wait: every attempt's timeout, plus slack for retries' delays."""
    timeout = float(stored(deployment.config, deployment.kind, "timeout"))
    retries = int(stored(deployment.config, deployment.kind, "retries"))
    return 1e9 if timeout < 0 else timeout * (1 + retries) + 60


def _from_row(row: Any) -> TaskItem:
    """A finished task read back from the store (another gateway, or after a restart)."""
    item = TaskItem(id=row.id, deployment=None, fmt=row.format, args=b"", created_at=row.created_at)  # type: ignore[arg-type]
    item.state = row.state
    item.result = row.result
    item.error = row.error
    item.attempts = list(row.attempts or [])
    return item


def live_call(gw: Gateway, who: Principal, call_id: str) -> TaskItem | None:
    """The call as this gateway's dispatcher holds it (open, or recently ended), in the caller's workspace."""
    item = gw.scheduler.dispatcher.find(call_id)
    if item is None or item.deployment is None or item.deployment.workspace_id != who.workspace_id:
        return None
    return item


async def stored_call(gw: Gateway, who: Principal, call_id: str) -> Task:
    """The call's row in the store; 404 when there is none in the caller's workspace."""
    row = await get_task(gw.store, call_id)
    if row is None or row.workspace_id != who.workspace_id:
        raise ApiError(404, f"no call or task {call_id!r}")
    return row


async def wait_finished(gw: Gateway, who: Principal, call_id: str, wait: float) -> TaskItem | None:
    """The finished task, or None when it is still open after ``wait`` seconds."""
    item = live_call(gw, who, call_id)
    if item is None:
        row = await stored_call(gw, who, call_id)
        if row.state in TERMINAL_STATES:
            return _from_row(row)
        return await wait_stored(gw, call_id, wait)
    if not item.done.is_set() and wait > 0:
        try:
            await asyncio.wait_for(item.done.wait(), wait)
        except TimeoutError:
            return None
    return item if item.done.is_set() else None


async def wait_stored(gw: Gateway, call_id: str, wait: float) -> TaskItem | None:
    """A call whose row another gateway finishes (the leader runs what followers accept), once it has ended.

    Woken by the NOTIFY of whichever gateway finishes it (PostgreSQL), else
    a short sleep; None when it is still open after ``wait`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        await gw.cluster.watch.wait(call_id, min(2.0, max(0.0, deadline - loop.time())))
        found = await get_task(gw.store, call_id)
        if found is not None and found.state in TERMINAL_STATES:
            return _from_row(found)
    return None


@router.post(
    "/api/v1/functions/{name}/calls",
    summary="Call a function: body is pickled (args, kwargs)",
    responses={
        200: wire.call_outcome(),
        202: {"model": wire.CallAccepted, "description": "Accepted without waiting (wait=false)"},
        504: {"model": ErrorBody, "description": "The call did not finish within its deadline"},
    },
)
async def call_function(
    name: str,
    request: Request,
    gw: GatewayDep,
    who: PrincipalDep,
    wait: bool = True,
    version: Version = None,
    idempotency_key: KeyHeader = None,
) -> Response:
    deployment = await task_deployment(gw, who, name, version)
    body = await read_limited(request, gw.settings.max_body_bytes)
    if wait:
        refuse_for_waiting_call(idempotency_key)
    elif idempotency_key is not None:
        call_id, replayed = await accept_keyed(gw, deployment, "pickle", body, idempotency_key)
        return Response(
            json.dumps({"call_id": call_id}),
            status_code=202,
            media_type="application/json",
            headers=replay_headers(replayed),
        )
    # ``.remote`` waits for its answer and needs no commit first; ``.spawn``/``put`` are durable before 202.
    [item] = await _submit(gw, deployment, [("pickle", body)], durable=not wait, origin=call_origin(request.scope))
    if not wait:
        return Response(json.dumps({"call_id": item.id}), status_code=202, media_type="application/json")
    finished = await wait_finished(gw, who, item.id, call_deadline(deployment))
    if finished is None:
        raise late_call(gw, deployment, item.id)
    return _outcome(finished)


def late_call(gw: Gateway, deployment: Deployment, call_id: str) -> ApiError:
    """The 504 of a call that outlived its deadline, saying what it waited for if it never got a container."""
    waiting = gw.scheduler.pending_reason(deployment.id)
    return ApiError(504, f"call {call_id} did not finish in time" + (f" while waiting: {waiting}" if waiting else ""))


def _check_arguments(deployment: Deployment, kwargs: dict[str, Any]) -> None:
    """Refuse a put whose keyword arguments cannot bind to the handler (when its signature is known)."""
    parameters = deployment.config.get("parameters") or []
    if not parameters:
        return
    kinds = {name: kind for name, kind, _ in parameters}
    accepts_any = "var_keyword" in kinds.values()
    for key in kwargs:
        if kinds.get(key) in (None, "positional_only", "var_positional", "var_keyword") and not accepts_any:
            raise ApiError(422, f"unexpected argument {key!r} for {deployment.name}")
    for name, kind, required in parameters:
        if required and kind in ("positional_or_keyword", "keyword_only", "positional_only") and name not in kwargs:
            raise ApiError(422, f"missing required argument {name!r} for {deployment.name}")


@router.post(
    "/taskqueue/{name}",
    status_code=202,
    summary="Put a task: the JSON body is the keyword arguments",
    response_model=wire.TaskAccepted,
)
async def put_task(
    name: str,
    request: Request,
    response: Response,
    gw: GatewayDep,
    who: PrincipalDep,
    idempotency_key: KeyHeader = None,
    version: Version = None,
) -> dict[str, Any]:
    deployment = await task_deployment(gw, who, name, version)
    body = await read_limited(request, gw.settings.max_body_bytes)
    task_id, replayed = await accept_put(gw, deployment, body, idempotency_key)
    response.headers.update(replay_headers(replayed))
    return {"task_id": task_id}


async def accept_put(gw: Gateway, deployment: Deployment, body: bytes, key: str | None = None) -> tuple[str, bool]:
    """Validate an HTTP put's JSON body and accept it durably; return (task id, whether ``key`` replayed it)."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError(422, f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, f"request body must be a JSON object, not {type(payload).__name__}")
    described = deployment.config.get("inputs")
    if described:
        check_inputs(described, body)
    else:
        _check_arguments(deployment, payload)
    if key is not None:
        return await accept_keyed(gw, deployment, "json", body or b"{}", key)
    [item] = await _submit(gw, deployment, [("json", body or b"{}")], durable=True)
    return item.id, False


@router.get(
    "/api/v1/calls/{call_id}",
    summary="A call's outcome (200) or its state while open (202)",
    responses={200: wire.call_outcome(), 202: {"model": wire.CallPending, "description": "The call is still open"}},
)
async def get_call(
    call_id: str, gw: GatewayDep, who: PrincipalDep, wait: Annotated[float, Query(ge=0, le=60)] = 0
) -> Response:
    finished = await wait_finished(gw, who, call_id, wait)
    if finished is None:
        return Response(
            json.dumps({"call_id": call_id, "state": "PENDING"}), status_code=202, media_type="application/json"
        )
    return _outcome(finished)


async def _cancel(gw: Gateway, who: Principal, call_id: str) -> dict[str, Any]:
    item = live_call(gw, who, call_id)
    if item is None:
        return {"id": call_id, "state": (await stored_call(gw, who, call_id)).state}
    item = gw.scheduler.dispatcher.cancel(call_id) or item
    return {"id": call_id, "state": item.state}


@router.post("/api/v1/calls/{call_id}/cancel", response_model=wire.CallState)
async def cancel_call(call_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return await _cancel(gw, who, call_id)


# -- tasks ------------------------------------------------------------------------------------


def _task_view(row: Any) -> dict[str, Any]:
    result: Any = None
    if row.state == "COMPLETE" and row.format == "json" and row.result:
        result = json.loads(row.result)
    return {
        "id": row.id,
        "name": row.name,
        "state": row.state,
        "attempt": row.attempt,
        "attempts": row.attempts,
        "error": {k: v for k, v in (row.error or {}).items() if k != "exception_pickle"} or None,
        "result": result,
        "result_size": len(row.result) if row.result else 0,
        "map_id": row.map_id,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "container_id": row.container_id,
    }


@router.get("/api/v1/tasks/{task_id}", response_model=wire.TaskView, response_model_exclude_unset=True)
async def get_task_view(task_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    await asyncio.sleep(0)
    row = await get_task(gw.store, task_id)
    item = gw.scheduler.dispatcher.find(task_id)
    if row is None or row.workspace_id != who.workspace_id:
        if item is not None and item.deployment.workspace_id == who.workspace_id:
            return {
                "id": item.id,
                "name": item.deployment.name,
                "state": item.state,
                "attempt": item.attempt,
                "attempts": item.attempts,
                "error": item.error,
                "result": None,
                "result_size": 0,
                "map_id": item.map_id,
                "created_at": item.created_at,
                "started_at": item.started_at,
                "finished_at": None,
                "container_id": item.container_id,
            }
        raise ApiError(404, f"no task {task_id!r}")
    view = _task_view(row)
    if item is not None:  # the in-memory state is newer than the row until the writer catches up
        view.update(state=item.state, attempt=item.attempt, attempts=item.attempts)
    return view


@router.get("/api/v1/tasks", response_model=list[wire.TaskView], response_model_exclude_unset=True)
async def list_task_views(
    gw: GatewayDep,
    who: PrincipalDep,
    state: Annotated[str | None, Query(pattern="^(PENDING|RUNNING|COMPLETE|FAILED|CANCELLED|EXPIRED)$")] = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="skip this many (newest first): a page")] = 0,
) -> list[dict[str, Any]]:
    rows = await list_tasks(gw.store, who.workspace_id, state=state, name=name, limit=limit, offset=offset)
    return [_task_view(r) for r in rows]


@router.post("/api/v1/tasks/{task_id}/cancel", response_model=wire.CallState)
async def cancel_task(task_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return await _cancel(gw, who, task_id)
