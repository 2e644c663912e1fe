"""Answers to the calls the native front began and gave up (``cove.server._front``), worded here.

The front hands such a call's connection over with a note: its container
failed before answering, its deadline passed, or its answer is a generator's
stream. The answer is written as the gateway's own path words it (the same
errors, the same stream head) before the connection is adopted as any other.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from .._wire.defaults import stored
from ..scheduler import Lease
from ._errors import ApiError
from ._invoke import call_headers, container_failure, error_answer, waiting_errors, whole_head
from ._streams import relay
from ._upstream_head import UpstreamError, parse_head

if TYPE_CHECKING:
    from ._front_tables import FrontTables, _Route
    from ._state import Gateway


_MAX_READ_AHEAD = 1 << 20  # bytes of the next requests read from a client while its stream runs


def default_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default header lines (uvicorn's ``server``, and any configured) but ``date``, as written."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers if pair[0] != b"date")


def _head(status: int, default: bytes, lines: bytes) -> bytes:
    """A status line, the date and ``default`` lines, then an answer's own ``lines``, as the server writes them."""
    return b"".join((STATUS_LINE[status], b"date: %s\r\n" % formatdate(usegmt=True).encode(), default, lines))


async def answer_front_call(
    gateway: Gateway,
    tables: FrontTables,
    default: bytes,
    adopt: Callable[[socket.socket, bytes], None],
    note: list[str],
    client: socket.socket,
    container: socket.socket | None,
    request: bytes,
    answered: bytes,
    after: bytes,
) -> None:
    """A call the front began and gave up: its answer written here as the gateway's own path would, then the
    connection adopted with what followed the request (``after``), or closed when the answer says it closes
    (the client asked for it, or the gateway drains). ``answered``: a stream's bytes the front read from the
    container, its head included. ``default``: :func:`default_lines` of the server."""
    kind, route_id, container_id, call_id, rid, keep, elapsed_us = note[:7]
    end = b"connection: close\r\n\r\n" if keep == "close" else b"\r\n"
    loop = asyncio.get_running_loop()
    client.setblocking(False)
    route = tables.route(int(route_id))
    try:
        if kind == "stream" and container is not None:
            call = _FrontCall(container_id, call_id, rid, int(elapsed_us) / 1e6)
            read = bytearray(after)
            whole = await _relay_stream(gateway, tables, route, default, client, container, answered, call, end, read)
            if not whole:  # the stream broke off where its format cannot say so: the connection goes with it
                client.close()
                return
            after = bytes(read)
        else:
            if kind == "timeout" and route is not None:
                timeout = float(stored(route.deployment.config, route.deployment.kind, "timeout"))
                error = waiting_errors(gateway.scheduler, route.deployment, timeout).error_for(TimeoutError())
                assert error is not None
            else:
                slot = gateway.scheduler.slot(container_id)
                what = "container closed the connection" if kind == "closed-idle" else "the container's answer failed"
                if slot is not None:
                    error = await container_failure(Lease(slot), UpstreamError(what))
                else:
                    error = ApiError(502, f"container {container_id} failed: {what}")
            status, body, extra = error_answer(error)
            gateway.metrics.invocation(("-", "-"), status, 0.0)
            lines = whole_head(extra, rid.encode()) + b"content-length: %d\r\n" % len(body) + end
            await loop.sock_sendall(client, _head(status, default, lines) + body)
    except OSError:
        client.close()
        return
    if keep == "close":
        client.close()
    else:
        adopt(client, after)


class _FrontCall(NamedTuple):
    container_id: str
    call_id: str
    rid: str
    elapsed: float  # seconds since the front sent it


async def _relay_stream(
    gateway: Gateway,
    tables: FrontTables,
    route: _Route | None,
    default: bytes,
    client: socket.socket,
    container: socket.socket,
    answered: bytes,
    call: _FrontCall,
    last: bytes,
    read: bytearray,
) -> bool:
    """A generator's answer the front began, relayed as the gateway relays its own streams (``relay``): the same
    head, its deadline kept from when the front sent the call, an error record where the format has one when it
    breaks off or runs late, and a slot of its container held meanwhile (the front is told the room less one).
    ``last``: the head's last lines. What the client sends meanwhile is kept in ``read`` (the next requests).
    Whether the answer ended whole (the connection may serve on)."""
    loop = asyncio.get_running_loop()
    head_end = answered.find(b"\r\n\r\n")
    media = parse_head(answered[:head_end])[3] or "application/octet-stream"  # chunked: the front checked
    told = route.containers.get(call.container_id) if route is not None else None
    stream = await gateway.upstream.adopt_socket(told[0] if told else "", container, answered[head_end + 4 :], media)
    deadline = None
    if route is not None:
        timeout = float(stored(route.deployment.config, route.deployment.kind, "timeout"))
        deadline = None if timeout < 0 else loop.time() + timeout - call.elapsed
    ended = False

    async def send(message: dict[str, Any]) -> None:
        nonlocal ended
        if message["type"] == "http.response.start":
            pairs = b"".join(b"%s: %s\r\n" % pair for pair in message["headers"])
            lines = pairs + b"transfer-encoding: chunked\r\n" + last
            await loop.sock_sendall(client, _head(message["status"], default, lines))
            return
        body = message.get("body", b"")
        out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        if not message.get("more_body"):
            out += b"0\r\n\r\n"
            ended = True
        if out:
            await loop.sock_sendall(client, out)

    async def receive() -> dict[str, Any]:
        """Return when the client is gone; keep what it sends meanwhile, up to a bound."""
        while len(read) < _MAX_READ_AHEAD:
            data = await loop.sock_recv(client, 65536)
            if not data:
                return {"type": "http.disconnect"}
            read.extend(data)
        await asyncio.Event().wait()  # read no further until the stream ends
        raise AssertionError("unreachable")

    slots = tables.slots()
    lease = slots.hold(call.container_id)
    headers = [*call_headers(call.container_id, call.call_id), (b"x-request-id", call.rid.encode())]
    await relay(
        stream, (lambda: slots.release(lease)) if lease is not None else _nothing, deadline, receive, send, headers
    )
    if route is not None:
        gateway.metrics.invocation(route.label, 200, 0.0)
    return ended


def _nothing() -> None:
    pass
