"""A lean HTTP/1.1 client from the gateway to container sockets.

This is the invocation hot path. Both ends are ours and the runner answers
with ``Content-Length``, so a small keep-alive client over asyncio streams
replaces a general-purpose HTTP client and its per-request cost. The one
exception is a generator handler's answer, chunked as its items come: it is
handed over as an :class:`UpstreamStream`, read a piece at a time, and its
connection goes back to the pool only once its last chunk was read. A request
served in callbacks (the express lane) goes over :attr:`UpstreamPool.direct`
instead (``_upstream_direct``), whose chunked answers become streams here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict

from ._upstream_direct import DirectConnections, Waiter
from ._upstream_head import (
    MAX_HEADER_BYTES,
    UpstreamClosedIdle,
    UpstreamError,
    UpstreamUnreachable,
    connect,
    parse_head,
)

__all__ = ["UpstreamClosedIdle", "UpstreamError", "UpstreamPool", "UpstreamStream", "UpstreamUnreachable", "Waiter"]

_MAX_IDLE_PER_ADDRESS = 64
_PIECE = 64 * 1024  # the most of a streamed body read at once


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _open(address: str) -> _Connection:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=loop)
    transport, protocol = await connect(address, lambda: asyncio.StreamReaderProtocol(reader, loop=loop))
    return _Connection(reader, asyncio.StreamWriter(transport, protocol, reader, loop))  # type: ignore[arg-type]


class UpstreamStream:
    """A container's chunked answer (a generator's items), read as it arrives.

    :meth:`read` returns the body a piece at a time, never more than
    ``_PIECE`` bytes, so a large item is not held whole; ``at_boundary`` says
    whether the pieces so far end on a chunk's end (one item, or one record).
    The connection belongs to the stream: back to the pool after the last
    chunk, closed by :meth:`close` before that (which the runner sees as its
    caller going away, and so closes the generator).
    """

    __slots__ = ("_conn", "_keep_alive", "_left", "_pool", "address", "at_boundary", "complete", "content_type")

    def __init__(
        self, pool: UpstreamPool, address: str, conn: _Connection, content_type: str, keep_alive: bool
    ) -> None:
        self._pool = pool
        self.address = address
        self._conn = conn
        self.content_type = content_type
        self._keep_alive = keep_alive
        self._left = 0  # bytes of the current chunk still to read
        self.at_boundary = True
        self.complete = False

    async def read(self) -> bytes:
        """The next piece of the body; ``b""`` once it ended. ``UpstreamError`` when it broke off."""
        if self.complete:
            return b""
        reader = self._conn.reader
        try:
            if not self._left:
                size = _chunk_size(await reader.readuntil(b"\r\n"))
                if size == 0:
                    if await reader.readuntil(b"\r\n") != b"\r\n":
                        raise ValueError("trailers after the last chunk")
                    self._finished()
                    return b""
                self._left = size
                self.at_boundary = False
            piece = await reader.read(min(self._left, _PIECE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", self._left)
            self._left -= len(piece)
            if not self._left:
                if await reader.readexactly(2) != b"\r\n":
                    raise ValueError("a chunk does not end with CRLF")
                self.at_boundary = True
            return piece
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._conn.close()
            raise UpstreamError(f"the container's stream broke off: {exc or type(exc).__name__}") from exc
        except BaseException:
            self._conn.close()  # cancelled mid-read: the connection's state is unknown
            raise

    def _finished(self) -> None:
        self.complete = True
        self._pool._give_back(self.address, self._conn, self._keep_alive)

    def close(self) -> None:
        """Stop reading: the connection closes unless the stream already ended."""
        if not self.complete:
            self._conn.close()


class UpstreamPool:
    """Keep-alive connections to containers, reused across requests."""

    def __init__(self) -> None:
        self._idle: defaultdict[str, list[_Connection]] = defaultdict(list)
        self.direct = DirectConnections(self._adopt_stream)  # the express lane's connections

    async def invoke(
        self, address: str, body: bytes, call_id: str, accept: bytes = b"", request_id: str = "", traceparent: str = ""
    ) -> tuple[int, bytes | UpstreamStream]:
        """POST a JSON body to the runner's ``/invoke`` (an endpoint call); return (status, body).

        A generator handler's answer is an :class:`UpstreamStream`, in the format ``accept`` asks for.
        ``request_id`` goes along as ``X-Request-Id``: the runner tags the handler's log lines with it.
        """
        return await self._send(address, invoke_request(body, call_id, accept, request_id, traceparent))

    async def stream(self, address: str, body: bytes, call_id: str) -> tuple[int, bytes | UpstreamStream]:
        """POST pickled arguments to the runner's ``/stream`` (``.remote_gen``); the records come as a stream."""
        return await self._send(address, _request(b"/stream", b"application/octet-stream", body, call_id, b""))

    async def call(self, address: str, body: bytes, call_id: str) -> tuple[int, bytes]:
        """POST a framed batch of task inputs to the runner's ``/call``; return (status, body)."""
        status, payload = await self._send(address, _request(b"/call", b"application/octet-stream", body, call_id, b""))
        if type(payload) is not bytes:
            payload.close()  # type: ignore[union-attr]
            raise UpstreamError("the container streamed its answer to a batch of calls")
        return status, payload

    async def _send(self, address: str, request: bytes) -> tuple[int, bytes | UpstreamStream]:
        """Send a whole request to the runner; its answer, whole or as a stream."""
        idle = self._idle.get(address)
        reused = bool(idle)
        conn = await self.borrow(address)
        head = b""
        try:
            conn.writer.write(request)
            head = await conn.reader.readuntil(b"\r\n\r\n")
            status, length, keep_alive, streamed = parse_head(head)
            if streamed is not None:
                return status, UpstreamStream(self, address, conn, streamed, keep_alive)
            payload = await conn.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            message = f"container closed the connection: {exc or type(exc).__name__}"
            unused = reused and not head and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            raise (UpstreamClosedIdle if unused else UpstreamError)(message) from exc
        except BaseException:
            conn.close()  # cancelled or timed out mid-request: the stream state is unknown
            raise
        self._give_back(address, conn, keep_alive)
        return status, payload

    async def borrow(self, address: str) -> _Connection:
        """A connection to the container at ``address``, kept-alive or new, for a request of the caller's own.

        Hand it back with :meth:`give_back` once its answer was read whole, or close it.
        """
        idle = self._idle.get(address)
        if idle:
            return idle.pop()
        return await _open(address)  # UpstreamUnreachable when it cannot connect

    def give_back(self, address: str, conn: _Connection, keep_alive: bool) -> None:
        """Return a borrowed connection whose last answer was read whole (``keep_alive``: it may serve another)."""
        self._give_back(address, conn, keep_alive)

    def _give_back(self, address: str, conn: _Connection, keep_alive: bool) -> None:
        pool = self._idle[address]
        if keep_alive and len(pool) < _MAX_IDLE_PER_ADDRESS:
            pool.append(conn)
        else:
            conn.close()

    def forget(self, address: str) -> None:
        """Close idle connections to a container that is gone."""
        for conn in self._idle.pop(address, []):
            conn.close()
        self.direct.forget(address)

    def _adopt_stream(
        self, address: str, transport: asyncio.Transport, rest: bytes, content_type: str, keep_alive: bool
    ) -> UpstreamStream:
        """A direct connection's chunked answer as a stream: the connection becomes one of this pool's."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            reader.feed_data(rest)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return UpstreamStream(self, address, _Connection(reader, writer), content_type, keep_alive)

    async def adopt_socket(self, address: str, sock: socket.socket, rest: bytes, content_type: str) -> UpstreamStream:
        """A container's chunked answer begun on a socket read elsewhere (the native front's, ``rest`` read
        after its head) as a stream; the connection closes when the stream ends."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=loop)
        if rest:
            reader.feed_data(rest)  # before the socket's own bytes, which come once it is connected
        transport, protocol = await loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sock=sock
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return UpstreamStream(self, address, _Connection(reader, writer), content_type, keep_alive=False)

    def close(self) -> None:
        for address in list(self._idle):
            self.forget(address)
        self.direct.close()


def _request(path: bytes, content_type: bytes, body: bytes, call_id: str, extra_headers: bytes) -> bytes:
    """A POST to the runner; ``extra_headers`` are whole header lines (``Accept``, ``X-Request-Id``)."""
    return (
        b"POST %s HTTP/1.1\r\nHost: c\r\nContent-Type: %s\r\nX-Cove-Call-Id: %s\r\n%sContent-Length: %d\r\n\r\n%s"
        % (
            path,
            content_type,
            call_id.encode(),
            extra_headers,
            len(body),
            body,
        )
    )


def invoke_request(
    body: bytes, call_id: str, accept: bytes = b"", request_id: str = "", traceparent: str = ""
) -> bytes:
    """An endpoint call's POST to the runner's ``/invoke`` (see :meth:`UpstreamPool.invoke`)."""
    extra = b"Accept: %s\r\n" % accept if accept else b""
    if request_id:
        extra += b"X-Request-Id: %s\r\n" % request_id.encode()
    if traceparent:  # tracing is on: the runner's handler span continues the gateway's relay span
        extra += b"traceparent: %s\r\n" % traceparent.encode()
    return _request(b"/invoke", b"application/json", body, call_id, extra)


def _chunk_size(line: bytes) -> int:
    """The size on a chunk's first line (extensions ignored)."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 15 or digits.strip(b"0123456789abcdefABCDEF"):
        raise ValueError(f"malformed chunk size line {line[:40]!r}")
    return int(digits, 16)
