"""The express lane's container connections (``_upstream_direct``) against a real Unix socket server.

The server plays a runner: it reads each request and answers with scripted
bytes (a whole answer in pieces, a chunked one, none at all), so each way a
connection's callbacks can be called is checked against what really arrives.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from cove.gateway import _upstream_head as upstream_head
from cove.gateway._upstream import UpstreamPool, UpstreamStream, invoke_request
from cove.gateway._upstream_head import UpstreamClosedIdle, UpstreamError, UpstreamUnreachable

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]  # False: close the connection


class _Waiter:
    def __init__(self) -> None:
        self.connection: Any = None
        self.done = False
        self.outcome: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()

    def answered(self, status: int, body: bytes) -> None:
        self.outcome.set_result(("answered", (status, body)))

    def streaming(self, status: int, stream: UpstreamStream) -> None:
        self.outcome.set_result(("streaming", (status, stream)))

    def failed(self, error: UpstreamError) -> None:
        self.outcome.set_result(("failed", error))


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


def _run(tmp_path: Path, script: Script, test: Callable[[UpstreamPool, str, list[int]], Awaitable[None]]) -> None:
    """Serve ``script`` on a Unix socket and run ``test`` with a pool, the address and the connections accepted."""

    async def main() -> None:
        accepted: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            number = 0
            try:
                while await script(reader, writer, number):
                    number += 1
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        path = tmp_path / "runner.sock"
        server = await asyncio.start_unix_server(handle, str(path))
        pool = UpstreamPool()
        try:
            await asyncio.wait_for(test(pool, f"unix:{path}", accepted), 10)
        finally:
            pool.close()
            server.close()

    uvloop.run(main())


async def _call(pool: UpstreamPool, address: str, body: bytes = b"{}") -> tuple[str, Any]:
    waiter = _Waiter()
    pool.direct.send(address, invoke_request(body, "call-1", b"", "rid-1"), waiter)
    return await waiter.outcome


def test_whole_answers_in_pieces_and_the_connection_is_reused(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        seen.append(await _read_request(reader))
        body = b'{"n": %d}' % number
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )
        for i in range(0, len(answer), 7):  # the head and the body arrive in many pieces
            writer.write(answer[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        assert await _call(pool, address, b'{"a": 1}') == ("answered", (200, b'{"n": 0}'))
        assert await _call(pool, address) == ("answered", (200, b'{"n": 1}'))
        assert len(accepted) == 1  # kept alive

    _run(tmp_path, script, test)
    assert seen[0].startswith(b"POST /invoke HTTP/1.1\r\n")
    assert b"X-Cove-Call-Id: call-1\r\n" in seen[0] and b"X-Request-Id: rid-1\r\n" in seen[0]
    assert seen[0].endswith(b'\r\n\r\n{"a": 1}')


def test_a_chunked_answer_becomes_a_stream_whose_connection_goes_back_to_the_pool(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        await _read_request(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"c\r\n2\r\nde\r\n0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        kind, (status, stream) = await _call(pool, address)
        assert (kind, status, stream.content_type) == ("streaming", 200, "text/plain")
        pieces = []
        while piece := await stream.read():
            pieces.append(piece)
        assert b"".join(pieces) == b"abcde" and stream.complete
        # The stream's connection now serves the streams client; the coroutine path's next call reuses it.
        assert await pool.invoke(address, b"{}", "call-2") == (200, b"ok")
        assert len(accepted) == 1

    _run(tmp_path, script, test)


def test_a_kept_alive_connection_closed_before_any_answer_is_closed_idle(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        await _read_request(reader)
        if number == 1:
            return False  # the second request on this connection gets no answer at all
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return True

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        assert await _call(pool, address) == ("answered", (200, b""))
        kind, error = await _call(pool, address)
        assert kind == "failed" and type(error) is UpstreamClosedIdle

    _run(tmp_path, script, test)


def test_an_answer_broken_off_and_a_malformed_one_are_errors(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" if number == 0 else b"garbage\r\n\r\n")
        await writer.drain()
        return False

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        for _ in range(2):
            kind, error = await _call(pool, address)
            assert kind == "failed" and type(error) is UpstreamError, error  # not "closed idle": bytes came

    _run(tmp_path, script, test)


def test_no_container_listening_is_unreachable(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        return False

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        kind, error = await _call(pool, f"unix:{tmp_path}/nobody.sock")
        assert kind == "failed" and type(error) is UpstreamUnreachable

    _run(tmp_path, script, test)


def test_an_abandoned_request_closes_its_connection_and_is_not_answered(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        await _read_request(reader)
        await asyncio.sleep(0.2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return True

    async def test(pool: UpstreamPool, address: str, accepted: list[int]) -> None:
        waiter = _Waiter()
        pool.direct.send(address, invoke_request(b"{}", "call-1"), waiter)
        await asyncio.sleep(0.05)
        assert waiter.connection is not None
        waiter.done = True
        waiter.connection.abandon()  # as a deadline does
        await asyncio.sleep(0.4)
        assert not waiter.outcome.done()
        assert await _call(pool, address) == ("answered", (200, b""))  # on a new connection
        assert len(accepted) == 2

    _run(tmp_path, script, test)


def test_a_container_that_never_accepts_is_unreachable_after_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener whose accept queue is full drops new connections' SYNs: the connect would wait for minutes."""
    monkeypatch.setattr(upstream_head, "CONNECT_SECONDS", 0.3)
    with socket.socket() as stuck:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        address = f"tcp:127.0.0.1:{stuck.getsockname()[1]}"
        queued = socket.create_connection(stuck.getsockname())  # fills the queue; nothing accepts it

        async def main() -> None:
            started = time.monotonic()
            kind, error = await _call(UpstreamPool(), address)
            assert kind == "failed" and type(error) is UpstreamUnreachable, error
            assert "no connection within 0.3 s" in str(error)
            with pytest.raises(UpstreamUnreachable, match=r"no connection within 0\.3 s"):
                await UpstreamPool().invoke(address, b"{}", "call-2")  # the streams client alike
            assert time.monotonic() - started < 3

        try:
            uvloop.run(main())
        finally:
            queued.close()
