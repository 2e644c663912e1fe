"""The call hot paths as plain ASGI: ``.remote`` calls and task-queue puts.

``POST /api/v1/functions/{name}/calls`` (``.remote``) and ``POST /taskqueue/{name}``
do what their FastAPI routes do (those stay for ``.spawn``, pinned versions and
the OpenAPI document), without per-request dependency injection: auth and the
deployment from caches, the input queued in memory (a put is committed first),
the answer sent as soon as there is one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..scheduler._dispatch import QueueFull
from ..store import Deployment
from ._errors import ApiError, error_body
from ._functions_api import accept_put, call_deadline, outcome_parts, task_deployment
from ._invoke import read_body
from ._state import Gateway

PREFIX = "/api/v1/functions/"
SUFFIX = "/calls"
PUT_PREFIX = "/taskqueue/"


def handles(scope: dict[str, Any]) -> bool:
    """A plain waiting call or a put; anything else (spawn, ?version=) goes to the full routes."""
    path = scope["path"]
    if scope["method"] != "POST":
        return False
    if path.startswith(PUT_PREFIX):
        return "/" not in path[len(PUT_PREFIX) :] and not scope.get("query_string")
    return (
        path.startswith(PREFIX)
        and path.endswith(SUFFIX)
        and "/" not in path[len(PREFIX) : -len(SUFFIX)]
        and scope.get("query_string", b"") in (b"", b"wait=true")
    )


async def handle_call(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        if scope["path"].startswith(PUT_PREFIX):
            media, headers, body, status = await _put(gw, scope, receive)
        else:
            media, headers, body = await _call(gw, scope, receive)
            status = 200
    except ApiError as exc:
        status, media, headers, body = exc.status, "application/json", exc.headers, error_body(exc.status, exc.message)
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _request(gw: Gateway, scope: dict[str, Any], receive: Any, name: str) -> tuple[Deployment, bytes]:
    """Authenticate, find the function or queue, and read the body within the limit."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization")
    who = await gw.auth.principal(authorization.decode("latin-1") if authorization else None)
    deployment = await task_deployment(gw, who, name, None)
    declared = headers.get(b"content-length")
    try:
        size = int(declared) if declared else None
    except ValueError:
        raise ApiError(400, "Content-Length is not a number") from None
    return deployment, await read_body(receive, gw.settings.max_body_bytes, size)


async def _put(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes, int]:
    deployment, body = await _request(gw, scope, receive, scope["path"][len(PUT_PREFIX) :])
    task_id = await accept_put(gw, deployment, body)
    return "application/json", {}, b'{"task_id":"%s"}' % task_id.encode(), 202


async def _call(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes]:
    deployment, body = await _request(gw, scope, receive, scope["path"][len(PREFIX) : -len(SUFFIX)])
    try:
        [item] = await gw.scheduler.dispatcher.submit(deployment, [("pickle", body)], durable=False)
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    try:
        await asyncio.wait_for(item.done.wait(), call_deadline(deployment))
    except TimeoutError:
        raise ApiError(504, f"call {item.id} did not finish in time") from None
    return outcome_parts(item)
