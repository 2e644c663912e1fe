"""The gateway's HTTP protocol: a response's head and body leave in one write, and nothing waits longer than that.

A real uvicorn server with ``GatewayHttpProtocol`` on a loopback socket; the
socket transport underneath is wrapped to count the writes that reach it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import uvicorn

from cove.server._http_protocol import GatewayHttpProtocol


class _CountingTransport:
    """The real socket transport, counting the write calls that reach it."""

    def __init__(self, transport: asyncio.Transport, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def writelines(self, parts: Any) -> None:
        parts = list(parts)
        self._writes.append(sum(len(p) for p in parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


WRITES: list[int] = []


class _CountingProtocol(GatewayHttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CountingTransport(transport, WRITES))  # type: ignore[arg-type]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/small":
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/slow-stream":  # the head goes out at once; the body follows later
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})
    elif path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _serve() -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, http=_CountingProtocol, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    return head, await reader.readexactly(length)


def test_small_answers_leave_in_one_write_and_keep_alive_works() -> None:
    async def scenario() -> None:
        server, task, port = await _serve()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):  # one kept-alive connection, one write per answer
                WRITES.clear()
                writer.write(b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
                head, body = await asyncio.wait_for(_read_response(reader), 5)
                assert head.startswith(b"HTTP/1.1 202") and body == b"ok"
                await asyncio.sleep(0.05)
                assert len(WRITES) == 1, WRITES
            WRITES.clear()
            writer.write(b"GET /empty HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 204")
            writer.close()
        finally:
            server.should_exit = True
            await task

    asyncio.run(scenario())


def test_a_head_is_not_held_back_while_the_body_is_slow() -> None:
    async def scenario() -> None:
        server, task, port = await _serve()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(b"GET /slow-stream HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
            assert time.monotonic() - started < 0.4, "the head waited for the body"
            rest = b""
            while not rest.endswith(b"0\r\n\r\n"):
                rest += await asyncio.wait_for(reader.read(100), 5)
            assert b"late" in rest and b"!" in rest
            writer.close()
        finally:
            server.should_exit = True
            await task

    asyncio.run(scenario())
