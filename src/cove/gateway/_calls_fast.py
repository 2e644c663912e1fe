"""``POST /api/v1/functions/{name}/calls`` for ``.remote``: the call hot path, as plain ASGI.

The same call the FastAPI route serves (which stays for ``.spawn``, pinned
versions and the OpenAPI document), without per-request dependency
injection: auth from the cache, the deployment from the cache, the input
queued in memory, the answer sent as soon as the container returns it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..scheduler._dispatch import QueueFull
from ._errors import ApiError, error_body
from ._functions_api import call_deadline, outcome_parts, task_deployment
from ._invoke import read_body
from ._state import Gateway

PREFIX = "/api/v1/functions/"
SUFFIX = "/calls"


def handles(scope: dict[str, Any]) -> bool:
    """Only a plain waiting call; anything else (spawn, ?version=) goes to the full route."""
    path = scope["path"]
    return (
        scope["method"] == "POST"
        and path.startswith(PREFIX)
        and path.endswith(SUFFIX)
        and "/" not in path[len(PREFIX) : -len(SUFFIX)]
        and scope.get("query_string", b"") in (b"", b"wait=true")
    )


async def handle_call(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        media, headers, body = await _call(gw, scope, receive)
        status = 200
    except ApiError as exc:
        status, media, headers, body = exc.status, "application/json", exc.headers, error_body(exc.status, exc.message)
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _call(gw: Gateway, scope: dict[str, Any], receive: Any) -> tuple[str, dict[str, str], bytes]:
    name = scope["path"][len(PREFIX) : -len(SUFFIX)]
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization")
    who = await gw.auth.principal(authorization.decode("latin-1") if authorization else None)
    deployment = await task_deployment(gw, who, name, None)
    declared = headers.get(b"content-length")
    body = await read_body(receive, gw.settings.max_body_bytes, int(declared) if declared else None)
    try:
        [item] = await gw.scheduler.dispatcher.submit(deployment, [("pickle", body)], durable=False)
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    try:
        await asyncio.wait_for(item.done.wait(), call_deadline(deployment))
    except TimeoutError:
        raise ApiError(504, f"call {item.id} did not finish in time") from None
    return outcome_parts(item)
