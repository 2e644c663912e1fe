"""Container connections driven by callbacks: the express lane's client (``_express``).

The streams client (``_upstream.UpstreamPool``) awaits each step of a
request: the head with ``readuntil``, the body with ``readexactly``, each a
future and a trip through the event loop. A request served without a task
cannot await. Here a connection is an ``asyncio.Protocol`` that parses the
answer as its bytes arrive and calls its waiter once: with the whole answer,
with a failure, or, for a chunked answer (a generator's items), with the
connection handed to the streams client (``adopt_stream``), whose reader
already holds what came after the head.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from ._upstream_head import (
    MAX_HEADER_BYTES,
    UpstreamClosedIdle,
    UpstreamError,
    UpstreamUnreachable,
    connect,
    parse_head,
)

_MAX_IDLE_PER_ADDRESS = 64

# (address, transport, the bytes after the head, content type, keep-alive) -> the streams client's UpstreamStream
AdoptStream = Callable[[str, asyncio.Transport, bytes, str, bool], Any]


class Waiter(Protocol):
    """Who waits for one request's answer; exactly one of the three is called, unless ``done`` was set first."""

    connection: DirectConnection | None  # the connection carrying the request, once it has one
    done: bool  # the waiter gave up (its deadline passed): an answer that still comes is not wanted

    def answered(self, status: int, body: bytes) -> None: ...

    def streaming(self, status: int, stream: Any) -> None: ...

    def failed(self, error: UpstreamError) -> None: ...


class DirectConnection(asyncio.Protocol):
    """One kept-alive connection to a container, one request at a time."""

    __slots__ = ("_buffer", "_head", "_owner", "_reused", "_transport", "_waiter", "address")

    def __init__(self, owner: DirectConnections, address: str) -> None:
        self._owner = owner
        self.address = address
        self._transport: asyncio.Transport | None = None
        self._waiter: Waiter | None = None
        self._buffer = b""
        self._head: tuple[int, int, int, bool] | None = None  # status, body start, body end, keep-alive
        self._reused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self, request: bytes, waiter: Waiter) -> None:
        self._waiter = waiter
        waiter.connection = self
        self._transport.write(request)  # type: ignore[union-attr]  # connected: it came from the pool or an open

    def abandon(self) -> None:
        """The waiter gave up mid-request: the connection's state is unknown, so it closes."""
        self._waiter = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None:
            self._transport.close()  # type: ignore[union-attr]  # bytes nobody asked for: out of step
            return
        buffer = self._buffer + data if self._buffer else data
        head = self._head
        if head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    self._fail(UpstreamError("the container's answer head is too long"))
                else:
                    self._buffer = buffer
                return
            try:
                status, length, keep_alive, streamed = parse_head(buffer[: end + 4])
            except ValueError as exc:
                self._fail(UpstreamError(f"the container's answer is malformed: {exc}"))
                return
            if streamed is not None:
                self._waiter, self._buffer = None, b""
                transport = self._transport
                assert transport is not None  # it brought these bytes
                stream = self._owner.adopt_stream(self.address, transport, buffer[end + 4 :], streamed, keep_alive)
                waiter.streaming(status, stream)
                return
            head = self._head = (status, end + 4, end + 4 + length, keep_alive)
        status, start, stop, keep_alive = head
        if len(buffer) < stop:
            self._buffer = buffer
            return
        if len(buffer) > stop:
            self._fail(UpstreamError("the container sent more than its answer"))
            return
        self._buffer, self._head, self._waiter = b"", None, None
        self._reused = True
        if keep_alive:
            self._owner.give_back(self)
        else:
            self._transport.close()  # type: ignore[union-attr]
        waiter.answered(status, buffer[start:stop])

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.discard(self)
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        # Nothing of the answer came on a connection that served before: the container may have closed it as idle.
        unused = self._reused and not self._buffer and self._head is None
        message = f"container closed the connection: {exc or 'it ended'}"
        waiter.failed((UpstreamClosedIdle if unused else UpstreamError)(message))

    def _fail(self, error: UpstreamError) -> None:
        waiter, self._waiter = self._waiter, None
        self._transport.close()  # type: ignore[union-attr]
        if waiter is not None:
            waiter.failed(error)


class DirectConnections:
    """Kept-alive callback connections to containers, by address."""

    def __init__(self, adopt_stream: AdoptStream) -> None:
        self.adopt_stream = adopt_stream
        self._idle: defaultdict[str, list[DirectConnection]] = defaultdict(list)
        self._opening: set[asyncio.Task[None]] = set()

    def send(self, address: str, request: bytes, waiter: Waiter) -> None:
        """Send ``request`` on an idle connection to ``address``, or on a new one once it is open."""
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if not conn.closing():
                conn.send(request, waiter)
                return
        task = asyncio.get_running_loop().create_task(self._open_and_send(address, request, waiter))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open_and_send(self, address: str, request: bytes, waiter: Waiter) -> None:
        try:
            _, conn = await connect(address, lambda: DirectConnection(self, address))
        except UpstreamUnreachable as exc:
            if not waiter.done:
                waiter.failed(exc)
            return
        if waiter.done:
            self.give_back(conn)
        else:
            conn.send(request, waiter)

    def give_back(self, conn: DirectConnection) -> None:
        idle = self._idle[conn.address]
        if len(idle) < _MAX_IDLE_PER_ADDRESS:
            idle.append(conn)
        else:
            conn.abandon()

    def discard(self, conn: DirectConnection) -> None:
        """Forget a connection that ended."""
        idle = self._idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)

    def forget(self, address: str) -> None:
        """Close the idle connections to a container that is gone."""
        for conn in self._idle.pop(address, []):
            conn.abandon()

    def close(self) -> None:
        for address in list(self._idle):
            self.forget(address)
