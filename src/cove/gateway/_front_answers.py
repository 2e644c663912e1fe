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
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from .._wire.defaults import stored
from ..scheduler import Lease
from ._errors import ApiError
from ._invoke import call_headers, container_failure, error_answer, waiting_errors, whole_head
from ._streams import stream_headers
from ._upstream_head import UpstreamError

if TYPE_CHECKING:
    from ._front_tables import FrontTables
    from ._state import Gateway


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
    container after its head. ``default``: :func:`default_lines` of the server.

    A stream holds a slot of its container here while it runs (``Leases.hold``): the front, which counted it
    until it handed it over, sees the container's room less one on its next round."""
    kind, route_id, container_id, call_id, rid, keep = note[:6]
    end = b"connection: close\r\n\r\n" if keep == "close" else b"\r\n"
    loop = asyncio.get_running_loop()
    client.setblocking(False)
    route = tables.route(int(route_id))
    try:
        if kind == "stream" and container is not None:
            names = call_headers(container_id, call_id)
            slots = tables.slots()
            lease = slots.hold(container_id)
            try:
                status = await _relay_stream(default, client, container, answered, names, rid, end)
            finally:
                if lease is not None:
                    slots.release(lease)
            if route is not None:
                gateway.metrics.invocation(route.label, status, 0.0)
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


async def _relay_stream(
    default: bytes,
    client: socket.socket,
    container: socket.socket,
    got: bytes,
    names: list[tuple[bytes, bytes]],
    rid: str,
    last: bytes,
) -> int:
    """A generator's answer the front began: its head as the gateway writes a stream's (``names``: the container
    and call; ``last``: the head's last lines), then the container's chunked body relayed as it comes (the
    framing is the same), to its last chunk."""
    loop = asyncio.get_running_loop()
    container.setblocking(False)
    end = got.find(b"\r\n\r\n")
    head, body = got[: end + 4], got[end + 4 :]
    status = int(head[9:12])
    media = "application/octet-stream"
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            media = value.strip().decode("latin-1")
    pairs = [*stream_headers(media), *names, (b"x-request-id", rid.encode())]
    lines = b"".join(b"%s: %s\r\n" % pair for pair in pairs) + b"transfer-encoding: chunked\r\n" + last
    await loop.sock_sendall(client, _head(status, default, lines))
    try:
        tail = b""
        while True:
            if body:
                await loop.sock_sendall(client, body)
                tail = (tail + body)[-5:]
                if tail == b"0\r\n\r\n":
                    return status
            body = await loop.sock_recv(container, 65536)
            if not body:
                raise OSError("the container ended the stream early")
    finally:
        container.close()
