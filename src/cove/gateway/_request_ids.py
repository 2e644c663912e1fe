"""Every HTTP request gets an id: the client's ``X-Request-Id``, its ``traceparent``'s trace id, or a new one.

The id goes back in the response's ``X-Request-Id``, into the gateway's
access log line (``COVE_ACCESS_LOG=1``), and, as an ``X-Request-Id`` header
added to the request itself when the client sent none, to whatever serves
it: the leader a follower forwards to, a web app's container, and an
endpoint's runner, which tags the lines its handler prints with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ..scheduler import CallOrigin
from ..store import random_hex
from ._tracing import tracing_of

HEADER = b"x-request-id"
TRACEPARENT = b"traceparent"
SCOPE_KEY = "cove.request_id"
MAX_ID_CHARS = 128  # a longer (or unprintable) client id is replaced, not trusted into logs and headers

log = logging.getLogger("cove.access")


def _usable(value: bytes) -> bool:
    return 0 < len(value) <= MAX_ID_CHARS and all(0x21 <= b <= 0x7E for b in value)


def _trace_id(traceparent: bytes) -> bytes | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), or None when malformed."""
    parts = traceparent.strip().split(b"-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == b"0" * 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


def request_id_of(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """The request's id, and whether the client sent it as ``X-Request-Id``."""
    traced = None
    for name, value in headers:
        if name == HEADER and _usable(value):
            return value, True
        if name == TRACEPARENT:
            traced = _trace_id(value)
    return traced or random_hex(16).encode(), False


def request_id(scope: Mapping[str, Any]) -> str:
    """The id the wrapper gave this request ("" outside it)."""
    return str(scope.get(SCOPE_KEY, ""))


def call_origin(scope: Mapping[str, Any]) -> CallOrigin:
    """What a function call's container is told of the request that made it: its id and, when traced, the
    ``traceparent`` naming the gateway's server span (the traced wrapper rewrote the header to say so)."""
    traceparent = None
    if tracing_of(scope) is not None:
        traceparent = next((v.decode("latin-1") for n, v in scope["headers"] if n == TRACEPARENT), None)
    return CallOrigin(request_id(scope) or None, traceparent)


def log_fields(deployment: Any) -> dict[str, Any]:
    """The fields every container log record carries besides its container: its deployment and version."""
    if deployment is None:
        return {}
    return {"deployment": deployment.name, "version": deployment.version}


def assign_request_id(scope: dict[str, Any]) -> bytes:
    """Give the request its id (in ``scope``, and as a header of the request itself when the client sent none)."""
    rid, sent = request_id_of(scope["headers"])
    scope[SCOPE_KEY] = rid.decode("ascii")
    if not sent:
        scope["headers"] = [*scope["headers"], (HEADER, rid)]
    return rid


def sending_request_id(send: Any, rid: bytes, status: list[int]) -> Any:
    """``send`` adding ``X-Request-Id`` to the response's head, whose status it keeps in ``status[0]``."""

    async def send_with_id(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
            message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
        await send(message)

    return send_with_id


def log_access(scope: dict[str, Any], status: int, started: float) -> None:
    """The access log line of one answered request (``COVE_ACCESS_LOG=1``), with its id."""
    log.info(
        "%s %s %d",
        scope["method"],
        scope["path"],
        status,
        extra={
            "request_id": scope[SCOPE_KEY],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "seconds": round(time.perf_counter() - started, 6),
        },
    )


def with_request_ids(app: Any, access_log: bool) -> Any:
    """``app`` with request ids on every HTTP request (and one access log line each, when ``access_log``)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        rid = assign_request_id(scope)
        status = [0]
        send_with_id = sending_request_id(send, rid, status)
        if not access_log:
            await app(scope, receive, send_with_id)
            return
        started = time.perf_counter()
        try:
            await app(scope, receive, send_with_id)
        finally:
            log_access(scope, status[0], started)

    wrapped.api = getattr(app, "api", None)  # type: ignore[attr-defined]  # what the server's shutdown looks up
    return wrapped
