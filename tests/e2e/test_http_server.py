"""The gateway's HTTP protocol: a response's head and body leave in one write, and nothing waits longer than that;
``POST /endpoint/...`` is served outside the ASGI cycle with HTTP/1.1 kept whole, offered first to the express handler.

A real uvicorn server with ``GatewayHttpProtocol`` on a loopback socket; the
socket transport underneath is wrapped to count the writes that reach it. The
app's ``serve_endpoint`` here echoes the body (the gateway's own is
``cove.gateway._invoke.serve_endpoint``, tested end to end through ``cove server``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import uvicorn

from cove.server._drain import DRAINING
from cove.server._http_protocol import EXPRESS_MAX_BODY, DirectExchange, GatewayHttpProtocol


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
    if path == "/small" or path.startswith("/endpoint/"):  # the latter: not a POST, so not served directly
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


SERVED_DIRECTLY: list[str] = []


async def _serve_endpoint(exchange: DirectExchange) -> None:
    """Echo the body after the delay its path names (``/endpoint/echo/<ms>``); ``/endpoint/fail`` raises,
    ``/endpoint/stream`` answers in ASGI messages through uvicorn's ``send``."""
    path = exchange.scope["path"]
    SERVED_DIRECTLY.append(path)
    body = b""
    while True:
        message = await exchange.receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/endpoint/fail":
        raise RuntimeError("the handler broke")
    if path == "/endpoint/stream":
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        await exchange.send(start)
        for piece in (b"one ", b"two"):
            await exchange.send({"type": "http.response.body", "body": piece, "more_body": True})
        await exchange.send({"type": "http.response.body", "body": b""})
        return
    await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000 if path.startswith("/endpoint/echo/") else 0)
    await exchange.answer(201, b"content-type: application/json\r\nx-served: directly\r\n", body)


_app.serve_endpoint = _serve_endpoint  # type: ignore[attr-defined]

OFFERED: list[tuple[str, bytes]] = []  # what the express handler was offered: path, whole body


def _express(exchange: DirectExchange) -> bool:
    """Offered each endpoint POST with its whole body, in no task: ``/endpoint/express`` answers it at once,
    ``/endpoint/express-later`` 0.1 s later from a timer, ``/endpoint/express-500`` in a task that raises,
    ``/endpoint/express-broken`` raises here (before taking it); anything else is declined."""
    path = exchange.scope["path"]
    body = exchange.body()
    OFFERED.append((path, body))
    if path == "/endpoint/express-broken":
        raise RuntimeError("the lane broke before taking the request")
    if not path.startswith("/endpoint/express"):
        return False
    exchange.drop_body()
    head = b"content-type: application/json\r\nx-served: express\r\n"
    if path == "/endpoint/express":
        assert exchange.answer_now(200, head, body[::-1])
    elif path == "/endpoint/express-later":
        asyncio.get_running_loop().call_later(0.1, exchange.answer_now, 200, head, body[::-1])
    else:

        async def fail(_: DirectExchange) -> None:
            raise RuntimeError("the request failed after the lane took it")

        exchange.serve_in_task(fail)
    return True


_app.express_endpoint = _express  # type: ignore[attr-defined]


async def _serve(keep_alive: int) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, http=_CountingProtocol, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=keep_alive
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    return head, await reader.readexactly(length)


PORT = [0]  # the port of the server _scenario started


async def _exchange(request: bytes, answers: int = 1) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Send ``request`` (one write: several requests are pipelined) on a new connection; the answers, and
    whether the server closed the connection after them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
    writer.write(request)
    got = [await asyncio.wait_for(_read_response(reader), 5) for _ in range(answers)]
    try:
        rest = await asyncio.wait_for(reader.read(100), 0.3)
        closed = rest == b""
    except TimeoutError:
        closed = False
    writer.close()
    return got, closed


def _scenario(body: Any, keep_alive: int = 5) -> None:
    async def run() -> None:
        server, task, PORT[0] = await _serve(keep_alive)
        try:
            await body()
        finally:
            server.should_exit = True
            await task

    asyncio.run(run())


def test_small_answers_leave_in_one_write_and_keep_alive_works() -> None:
    async def body() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
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

    _scenario(body)


def test_a_head_is_not_held_back_while_the_body_is_slow() -> None:
    async def body() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
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

    _scenario(body)


def test_endpoint_posts_are_served_directly_in_one_write_and_other_requests_by_the_app() -> None:
    async def body() -> None:
        SERVED_DIRECTLY.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        for n in range(3):  # kept alive across answers
            WRITES.clear()
            writer.write(b'POST /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\n{"n":%d}' % n)
            head, answer = await asyncio.wait_for(_read_response(reader), 5)
            assert head.startswith(b"HTTP/1.1 201") and answer == b'{"n":%d}' % n
            assert b"x-served: directly" in head and b"date: " in head and b"content-length: 7" in head
            assert b"connection: close" not in head
            await asyncio.sleep(0.05)
            assert len(WRITES) == 1, WRITES
        writer.write(b"GET /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\n\r\n")  # not a POST: the app's
        writer.write(b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")  # not the path: the app's
        for _ in range(2):
            head, answer = await asyncio.wait_for(_read_response(reader), 5)
            assert head.startswith(b"HTTP/1.1 202") and answer == b"ok"
        writer.close()
        assert SERVED_DIRECTLY == ["/endpoint/echo/0"] * 3

    _scenario(body)


def test_pipelined_endpoint_requests_are_answered_in_order() -> None:
    async def body() -> None:
        # The first takes longest: answered out of order, the bodies would not line up with the requests.
        requests = b"".join(
            b"POST /endpoint/echo/%d HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n%d" % (delay, n)
            for n, delay in enumerate((200, 0, 50))
        )
        got, _ = await _exchange(requests + b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n", 4)
        assert [answer for _, answer in got] == [b"0", b"1", b"2", b"ok"]

    _scenario(body)


def test_a_body_in_pieces_and_expect_100_continue_are_read_whole() -> None:
    async def body() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        writer.write(
            b"POST /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        for piece in (b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"):
            writer.write(piece)
            await asyncio.sleep(0.05)
        head, answer = await asyncio.wait_for(_read_response(reader), 5)
        assert head.startswith(b"HTTP/1.1 201") and answer == b"hello world"
        writer.close()

    _scenario(body)


def test_the_connection_closes_when_the_client_or_a_drain_asks() -> None:
    async def body() -> None:
        request = b"POST /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n%s\r\nhi"
        got, closed = await _exchange(request % b"connection: close\r\n")
        assert b"connection: close" in got[0][0] and got[0][1] == b"hi" and closed
        got, closed = await _exchange(b"POST /endpoint/echo/0 HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi")
        assert b"connection: close" in got[0][0] and closed
        got, closed = await _exchange(request % b"")
        assert b"connection: close" not in got[0][0] and not closed
        DRAINING.active = True
        try:
            got, closed = await _exchange(request % b"")
        finally:
            DRAINING.active = False
        assert b"connection: close" in got[0][0] and got[0][1] == b"hi" and closed

    _scenario(body)


def test_a_failing_handler_answers_500_and_a_streamed_answer_goes_through_asgi() -> None:
    async def body() -> None:
        got, closed = await _exchange(b"POST /endpoint/fail HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        assert got[0][0].startswith(b"HTTP/1.1 500") and closed
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        writer.write(b"POST /endpoint/stream HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += await asyncio.wait_for(reader.read(100), 5)
        assert rest == b"4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n"
        writer.write(b"POST /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok")  # still alive
        head, answer = await asyncio.wait_for(_read_response(reader), 5)
        assert head.startswith(b"HTTP/1.1 201") and answer == b"ok"
        writer.close()

    _scenario(body)


def test_an_idle_kept_alive_connection_closes_after_its_timeout_and_a_busy_one_does_not() -> None:
    """One sweep per server closes connections idle past ``timeout_keep_alive`` (1 s here); a request
    under way, longer than that, keeps its connection, which closes once it has been idle as long."""

    async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
        assert await asyncio.wait_for(reader.read(100), 5) == b"", "the server sent more than the answer"
        return time.monotonic() - started

    async def body() -> None:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        idle_writer.write(b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        await asyncio.wait_for(_read_response(idle_reader), 5)
        answered = time.monotonic()
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        busy_writer.write(b"POST /endpoint/echo/1600 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
        waited = await closed_after(idle_reader, answered)
        assert 1.0 <= waited < 2.0, waited
        head, answer = await asyncio.wait_for(_read_response(busy_reader), 5)  # open past the timeout: busy
        assert head.startswith(b"HTTP/1.1 201") and answer == b"hi"
        waited = await closed_after(busy_reader, time.monotonic())
        assert 0.9 <= waited < 2.0, waited
        idle_writer.close()
        busy_writer.close()

    _scenario(body, keep_alive=1)


def test_the_express_handler_gets_whole_bodies_and_declines_or_fails_into_serve_endpoint() -> None:
    async def body() -> None:
        OFFERED.clear()
        SERVED_DIRECTLY.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        writer.write(b"POST /endpoint/express HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(0.1)  # half a body: not offered yet
        assert OFFERED == []
        writer.write(b"2\r\nde\r\n0\r\n\r\n")
        head, answer = await asyncio.wait_for(_read_response(reader), 5)
        assert head.startswith(b"HTTP/1.1 200") and b"x-served: express" in head and answer == b"edcba"
        # Taken later, in order with what follows it; declined and broken ones reach serve_endpoint whole.
        writer.write(
            b"POST /endpoint/express-later HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n123"
            b"POST /endpoint/echo/0 HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nkept"
            b"POST /endpoint/express-broken HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nwhole"
            b"POST /endpoint/express-500 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
        )
        answers = [await asyncio.wait_for(_read_response(reader), 5) for _ in range(4)]
        assert [a for _, a in answers[:3]] == [b"321", b"kept", b"whole"]
        assert answers[3][0].startswith(b"HTTP/1.1 500")
        assert SERVED_DIRECTLY == ["/endpoint/echo/0", "/endpoint/express-broken"]
        writer.close()  # a 500 closes its connection
        # 100-continue and a body past EXPRESS_MAX_BODY are read as they come, never offered.
        OFFERED.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT[0])
        writer.write(b"POST /endpoint/express HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hi")
        head, answer = await asyncio.wait_for(_read_response(reader), 5)
        assert b"x-served: directly" in head and answer == b"hi"
        large = b"x" * (EXPRESS_MAX_BODY + 10)
        writer.write(b"POST /endpoint/express HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(large))
        for start in range(0, len(large), 16384):
            writer.write(large[start : start + 16384])
            await asyncio.sleep(0.01)
        head, answer = await asyncio.wait_for(_read_response(reader), 5)
        assert b"x-served: directly" in head and answer == large
        assert OFFERED == []
        writer.close()

    _scenario(body)
