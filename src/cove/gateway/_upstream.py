"""A lean HTTP/1.1 client from the gateway to container sockets.

This is the invocation hot path. Both ends are ours and the runner always
answers with ``Content-Length``, so a small keep-alive client over asyncio
streams replaces a general-purpose HTTP client and its per-request cost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

_MAX_IDLE_PER_ADDRESS = 64
_MAX_HEADER_BYTES = 64 * 1024


class UpstreamError(ConnectionError):
    """The container closed or refused the connection before answering."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _open(address: str) -> _Connection:
    if address.startswith("unix:"):
        reader, writer = await asyncio.open_unix_connection(address[5:], limit=_MAX_HEADER_BYTES)
    elif address.startswith("tcp:"):
        host, _, port = address[4:].rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=_MAX_HEADER_BYTES)
    else:
        raise UpstreamError(f"unsupported container address {address!r}")
    return _Connection(reader, writer)


class UpstreamPool:
    """Keep-alive connections to containers, reused across requests."""

    def __init__(self) -> None:
        self._idle: defaultdict[str, list[_Connection]] = defaultdict(list)

    async def invoke(self, address: str, body: bytes, call_id: str) -> tuple[int, bytes]:
        """POST a JSON body to the runner's ``/invoke`` (an endpoint call); return (status, body)."""
        return await self._post(address, b"/invoke", b"application/json", body, call_id)

    async def call(self, address: str, body: bytes, call_id: str) -> tuple[int, bytes]:
        """POST a framed batch of task inputs to the runner's ``/call``; return (status, body)."""
        return await self._post(address, b"/call", b"application/octet-stream", body, call_id)

    async def _post(
        self, address: str, path: bytes, content_type: bytes, body: bytes, call_id: str
    ) -> tuple[int, bytes]:
        idle = self._idle.get(address)
        conn = idle.pop() if idle else None
        if conn is None:
            try:
                conn = await _open(address)
            except OSError as exc:
                raise UpstreamError(f"cannot connect to container: {exc}") from exc
        try:
            conn.writer.write(
                b"POST %s HTTP/1.1\r\nHost: c\r\nContent-Type: %s\r\nX-Cove-Call-Id: %s\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (path, content_type, call_id.encode(), len(body), body)
            )
            head = await conn.reader.readuntil(b"\r\n\r\n")
            status, length, keep_alive = _parse_head(head)
            payload = await conn.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise UpstreamError(f"container closed the connection: {exc or type(exc).__name__}") from exc
        except BaseException:
            conn.close()  # cancelled or timed out mid-request: the stream state is unknown
            raise
        pool = self._idle[address]
        if keep_alive and len(pool) < _MAX_IDLE_PER_ADDRESS:
            pool.append(conn)
        else:
            conn.close()
        return status, payload

    def forget(self, address: str) -> None:
        """Close idle connections to a container that is gone."""
        for conn in self._idle.pop(address, []):
            conn.close()

    def close(self) -> None:
        for address in list(self._idle):
            self.forget(address)


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    status = int(parts[1])
    length = 0
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    return status, length, keep_alive
