"""The call hot paths as plain ASGI: ``.remote``, ``.spawn``, task-queue puts and result reads.

``POST /api/v1/functions/{name}/calls`` (``.remote``; ``?wait=false``, ``.spawn``),
``POST /taskqueue/{name}`` and ``GET /api/v1/calls/{id}`` (a result) do what their
FastAPI routes do (those stay for pinned versions, other query forms and the
OpenAPI document), without per-request dependency injection: auth and the
deployment from caches, the input queued in memory (a put is committed first),
the answer sent as soon as there is one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .._wire.parameters import ParameterError
from ..scheduler import QueueFull
from ..store import Deployment, Principal
from ._errors import ApiError
from ._follower_output import wait_done_or_printed
from ._functions_api import (
    accept_put,
    call_deadline,
    late_call,
    outcome_parts,
    task_deployment,
    wait_finished,
    wait_stored,
)
from ._idempotency import accept_keyed, refuse_for_waiting_call, replay_headers
from ._invoke import read_body
from ._output_api import wait_done_or_output
from ._request_ids import call_origin
from ._state import Gateway
from ._waiting import waiting_reason, with_reason

PREFIX = "/api/v1/functions/"
SUFFIX = "/calls"
PUT_PREFIX = "/taskqueue/"
RESULT_PREFIX = "/api/v1/calls/"
FOLLOW_HEADER = b"x-cove-follow-output"
KEY_HEADER = b"idempotency-key"


def handles(scope: dict[str, Any]) -> bool:
    """A plain call, spawn, put or result read; anything else (?version=, odd queries) goes to the full routes."""
    path = scope["path"]
    if scope["method"] == "GET":
        return (
            path.startswith(RESULT_PREFIX)
            and "/" not in path[len(RESULT_PREFIX) :]
            and _wait_seconds(scope.get("query_string", b"")) is not None
        )
    if scope["method"] != "POST":
        return False
    if path.startswith(PUT_PREFIX):
        return "/" not in path[len(PUT_PREFIX) :] and not scope.get("query_string")
    return (
        path.startswith(PREFIX)
        and path.endswith(SUFFIX)
        and "/" not in path[len(PREFIX) : -len(SUFFIX)]
        and scope.get("query_string", b"") in (b"", b"wait=true", b"wait=false")
    )


def _wait_seconds(query: bytes) -> float | None:
    """``wait`` of a result read when the query is only that (0 to 60 s); None sends it to the full route."""
    if not query:
        return 0.0
    if not query.startswith(b"wait="):
        return None
    try:
        wait = float(query[5:])
    except ValueError:
        return None
    return wait if 0 <= wait <= 60 else None  # out of range: the full route answers 422


async def handle_call(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        path = scope["path"]
        if scope["method"] == "GET":
            media, headers, body, status = await _result(gw, scope)
        elif path.startswith(PUT_PREFIX):
            media, headers, body, status = await _put(gw, scope, receive)
        elif scope.get("query_string") == b"wait=false":
            media, headers, body, status = await _spawn(gw, scope, receive)
        else:
            media, headers, body, status = await _call(gw, scope, receive)
    except ApiError as exc:
        body = exc.body()
        status, media, headers = exc.status, "application/json", exc.headers
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _principal(gw: Gateway, headers: dict[bytes, bytes]) -> Principal:
    authorization = headers.get(b"authorization")
    return await gw.auth.principal(authorization.decode("latin-1") if authorization else None)


async def _request(gw: Gateway, scope: dict[str, Any], receive: Any, name: str) -> tuple[Deployment, bytes, str | None]:
    """Authenticate, find the function or queue, and read the body within the limit.

    Also returns the request's ``Idempotency-Key``, if it has one.
    """
    headers: dict[bytes, bytes] = dict(scope["headers"])
    who = await _principal(gw, headers)
    deployment = await task_deployment(gw, who, name, None)
    declared = headers.get(b"content-length")
    try:
        size = int(declared) if declared else None
    except ValueError:
        raise ApiError(400, "Content-Length is not a number") from None
    key = headers.get(KEY_HEADER)
    body = await read_body(receive, gw.settings.max_body_bytes, size)
    return deployment, body, None if key is None else key.decode("latin-1")


async def _put(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes, int]:
    deployment, body, key = await _request(gw, scope, receive, scope["path"][len(PUT_PREFIX) :])
    task_id, replayed = await accept_put(gw, deployment, body, key)
    return "application/json", replay_headers(replayed), b'{"task_id":"%s"}' % task_id.encode(), 202


async def _spawn(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes, int]:
    """``.spawn``: the call is committed before its 202, like a put."""
    deployment, body, key = await _request(gw, scope, receive, scope["path"][len(PREFIX) : -len(SUFFIX)])
    if key is not None:
        call_id, replayed = await accept_keyed(gw, deployment, "pickle", body, key)
        return "application/json", replay_headers(replayed), b'{"call_id":"%s"}' % call_id.encode(), 202
    try:
        [item] = await gw.scheduler.dispatcher.submit(
            deployment, [("pickle", body)], durable=True, origin=call_origin(scope)
        )
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    except ParameterError as exc:  # the class's constructor parameters the call names do not fit
        raise ApiError(422, str(exc)) from None
    return "application/json", {}, b'{"call_id":"%s"}' % item.id.encode(), 202


async def _result(gw: Gateway, scope: dict[str, Any]) -> tuple[str, dict[str, str], bytes, int]:
    """A call's outcome (200), or its open state (202) after waiting up to ``wait`` seconds."""
    who = await _principal(gw, dict(scope["headers"]))
    call_id = scope["path"][len(RESULT_PREFIX) :]
    wait = _wait_seconds(scope.get("query_string", b""))
    finished = await wait_finished(gw, who, call_id, wait or 0.0)
    if finished is None:
        body = json.dumps({"call_id": call_id, "state": "PENDING"}).encode()
        return "application/json", {}, body, 202
    media, headers, body = outcome_parts(finished)
    return media, headers, body, 200


async def _call(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes, int]:
    """``.remote``: the outcome when the call ends.

    A caller that sends ``X-Cove-Follow-Output`` gets a 202 with the call id
    instead as soon as the running call has posted output, and reads that
    output live (``GET /api/v1/calls/{id}/output``) before its outcome.
    """
    deployment, body, key = await _request(gw, scope, receive, scope["path"][len(PREFIX) : -len(SUFFIX)])
    refuse_for_waiting_call(key)
    try:
        [item] = await gw.scheduler.dispatcher.submit(
            deployment, [("pickle", body)], durable=False, origin=call_origin(scope)
        )
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    except ParameterError as exc:  # the class's constructor parameters the call names do not fit
        raise ApiError(422, str(exc)) from None
    if not gw.cluster.leading:  # committed as a row the leader runs: wait for its end, announced by NOTIFY
        if any(name == FOLLOW_HEADER for name, _ in scope["headers"]):  # or until the leader holds its output
            try:
                finished = await wait_done_or_printed(gw, item.id, call_deadline(deployment))
            except TimeoutError:
                raise late_call(gw, deployment, item.id) from None
            if finished is None:
                body = b'{"call_id":"%s","state":"RUNNING"}' % item.id.encode()
                return "application/json", {"X-Cove-Call-Id": item.id}, body, 202
        else:
            finished = await wait_stored(gw, item.id, call_deadline(deployment))
            if finished is None:
                raise late_call(gw, deployment, item.id)
        return (*outcome_parts(finished), 200)
    try:
        if any(name == FOLLOW_HEADER for name, _ in scope["headers"]):
            if not await wait_done_or_output(item, call_deadline(deployment)):
                body = b'{"call_id":"%s","state":"RUNNING"}' % item.id.encode()
                return "application/json", {"X-Cove-Call-Id": item.id}, body, 202
        else:
            await asyncio.wait_for(item.done.wait(), call_deadline(deployment))
    except TimeoutError:
        raise with_reason(late_call(gw, deployment, item.id), waiting_reason(gw.scheduler, deployment)) from None
    return (*outcome_parts(item), 200)
