"""``/asgi/{name}/...``: HTTP requests to a web app, relayed to one of its containers as they stream.

A request is placed like an endpoint call: it counts as demand from the
moment it arrives, leases a slot of a ready container (a cold one makes it
wait, up to the deployment's ``timeout``), and holds the slot until its
answer ended. The relay is the endpoint path's: the connection comes from
the same keep-alive pool (``UpstreamPool.borrow``), a chunked answer is read
with ``UpstreamStream`` and a broken container is reported by
``_invoke.container_failure``. What differs is that nothing is buffered:

* the body goes on as it arrives: with its ``Content-Length`` when the whole
  of it came in the first piece, chunked otherwise; past the gateway's body
  limit the request is cut off with 413;
* the answer, every header included (repeats too), goes back as the
  container sends it, each piece only once the caller took the previous one;
* a caller that hangs up closes the connection to the container, which the
  runner turns into ``http.disconnect`` for the app.

The deployment's ``timeout`` bounds the whole exchange, as for an endpoint;
an answer still streaming then is cut off.

Every gateway serves web apps; one that does not lead relays to the
containers it sees ready (``_follower_slots``), and hands a request to the
leader only when it cannot (no leader answers its ask for a container, the
containers listen where only the leader connects, or the connection to the
container was refused before the request reached it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .._net.proxy import HOP_BY_HOP
from ..scheduler import Lease
from ._asgi_route import (
    PREFIX,
    Route,
    Target,
    acquire,
    parse_route,
    relayed_headers,
    request_head,
    resolve,
    slots_of,
)
from ._asgi_websocket import handle_websocket
from ._errors import ApiError, error_body
from ._follower_slots import ForwardToLeader
from ._invoke import container_failure
from ._state import Gateway
from ._upstream import UpstreamError, UpstreamStream, _Connection

_PIECE = 64 * 1024
_NO_BODY = frozenset({204, 304})
_MAX_HEAD = 64 * 1024


class _CallerGone(Exception):
    """The caller hung up: nobody to answer."""


def web_apps_in_front(inner: Any, api: Any) -> Any:
    """The gateway's ASGI app (``inner``; ``api`` is its FastAPI part) with requests under ``/asgi/`` served first.

    HTTP and WebSockets are served here on every gateway. The leader counts
    the requests another gateway handed to it (``cove_forwarded_requests_total``,
    route ``asgi``). The result keeps ``api`` as ``.api``.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and scope["path"].startswith(PREFIX):
            gw: Gateway = api.state.gateway
            gw.count_if_forwarded(scope, "asgi")
            if kind == "websocket":
                await handle_websocket(gw, scope, receive, send)
            else:
                await handle_http(gw, scope, receive, send)
            return
        await inner(scope, receive, send)

    app.api = api  # type: ignore[attr-defined]
    return app


async def handle_http(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer one HTTP request under ``/asgi/``: the app's answer, or the gateway's error."""
    started = time.perf_counter()
    labels = ("-", "-")
    status = 500
    answer = _Answer(send)
    forwarded = False
    try:
        route = parse_route(scope["path"])
        if not route.rest:
            status = await _redirect_to_slash(scope, route, send)
            return
        target = await resolve(gw, scope, route)
        deployment = target.deployment
        labels = (target.workspace, f"{deployment.name}/v{deployment.version}")
        status = await _relay(gw, scope, receive, answer, route, target)
    except ApiError as exc:
        status = exc.status
        if not answer.started:
            await answer.error(exc)
    except _CallerGone:
        status = 499  # nginx's word for it: the caller closed the connection before the answer
    except _ToLeader as exc:
        forwarded = True  # the leader answers it, and counts it
        await gw.cluster.forward(scope, exc.replay(receive), send)
    finally:
        if not forwarded:
            gw.metrics.invocation(labels, status, time.perf_counter() - started)


class _ToLeader(Exception):
    """This gateway hands the request to the leader; ``first``: the body's first message, read already."""

    def __init__(self, first: dict[str, Any]) -> None:
        super().__init__("forward to the leader")
        self.first = first

    def replay(self, receive: Any) -> Any:
        """``receive`` that gives ``first`` again, then the caller's own messages."""
        pending = [self.first]

        async def again() -> Any:
            return pending.pop() if pending else await receive()

        return again


class _Answer:
    """The caller's ``send``, remembering whether the answer began (after that, errors can only cut it off)."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.started = False
        self.status = 500

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def error(self, exc: ApiError) -> None:
        body = error_body(exc.status, exc.message, exc.type)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await self.start(exc.status, headers)
        await self.body(body, False)


async def _redirect_to_slash(scope: dict[str, Any], route: Route, send: Any) -> int:
    """``/asgi/NAME`` → ``/asgi/NAME/``: the app's root, where relative links resolve under its prefix."""
    query: bytes = scope.get("query_string") or b""
    location = route.mount.encode() + b"/" + (b"?" + query if query else b"")
    headers = [(b"location", location), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 307, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return 307


async def _relay(
    gw: Gateway, scope: dict[str, Any], receive: Any, answer: _Answer, route: Route, target: Target
) -> int:
    limit = gw.settings.max_body_bytes
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    first = await receive()
    if first["type"] == "http.disconnect":
        raise _CallerGone
    body = _Body(first, receive, limit)
    slots = slots_of(gw)
    try:
        lease, timeout, deadline = await acquire(gw, target.deployment)
    except ForwardToLeader:
        raise _ToLeader(first) from None
    served = False
    try:
        head = request_head(scope["method"], scope, relayed_headers(scope, route, target) + body.framing())
        served = await _exchange(gw, lease, head, body, answer, scope["method"], deadline, timeout)
    except ForwardToLeader:
        raise _ToLeader(first) from None
    finally:
        slots.release(lease, served=served)
    return answer.status


async def _exchange(
    gw: Gateway,
    lease: Lease,
    head: bytes,
    body: _Body,
    answer: _Answer,
    method: str,
    deadline: float | None,
    timeout: float,
) -> bool:
    """Send the request, relay the answer; whether the container answered (its slot served a request)."""
    try:
        conn = await gw.upstream.borrow(lease.address)
    except UpstreamError as exc:
        if not gw.cluster.leading and await gw.follower.never_reached(lease, exc):
            raise ForwardToLeader from None  # nothing of the request was sent yet
        raise await container_failure(lease, exc) from None
    conn.writer.write(head)
    pump = asyncio.ensure_future(body.pump(conn))
    stream: _Reply | None = None
    try:
        with gw.deadlines.at(deadline):
            stream = await _reply_head(conn, pump, lease, gw, method)
            await answer.start(stream.status, stream.headers)
            await _relay_body(stream, answer, pump)
        if stream.reusable and body.complete:
            stream.give_back()
        return True
    except TimeoutError:
        if not answer.started:
            raise ApiError(504, f"no response within the deployment's timeout of {timeout:g} s") from None
        return True
    finally:
        _settle(pump)
        if stream is None or not stream.given_back:
            conn.close()


class _Body:
    """The caller's request body, sent on to the container as it arrives."""

    def __init__(self, first: dict[str, Any], receive: Any, limit: int) -> None:
        self._first: bytes = first.get("body", b"")
        self._more = bool(first.get("more_body"))
        self._receive = receive
        self._limit = limit
        self.complete = not self._more

    def framing(self) -> list[tuple[bytes, bytes]]:
        """The header that frames the relayed body: its length when it came whole, else chunked."""
        if self._more:
            return [(b"transfer-encoding", b"chunked")]
        return [(b"content-length", str(len(self._first)).encode())]

    async def pump(self, conn: _Connection) -> None:
        """Write the body to the container; then return once the caller hangs up (``_CallerGone``)."""
        writer = conn.writer
        size = len(self._first)
        if size > self._limit:
            raise ApiError(413, f"request body exceeds the limit of {self._limit} bytes")
        if not self._more:
            writer.write(self._first)
        else:
            if self._first:
                writer.write(b"%x\r\n%s\r\n" % (size, self._first))
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise _CallerGone
                piece: bytes = message.get("body", b"")
                size += len(piece)
                if size > self._limit:
                    raise ApiError(413, f"request body exceeds the limit of {self._limit} bytes")
                if piece:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                if not message.get("more_body"):
                    writer.write(b"0\r\n\r\n")
                    break
        self.complete = True
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        while (await self._receive())["type"] != "http.disconnect":
            pass
        raise _CallerGone


class _Reply:
    """The container's answer: status, the headers for the caller, and how its body is framed."""

    def __init__(self, gw: Gateway, address: str, conn: _Connection, head: bytes, method: str) -> None:
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ValueError(f"malformed status line {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        chunked = False
        keep_alive = True
        media = "application/octet-stream"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower() == b"chunked"
            elif name == b"connection":
                keep_alive = b"close" not in value.lower()
            elif name == b"content-type":
                media = value.decode("latin-1")
            if name not in HOP_BY_HOP:
                self.headers.append((name, value))
        self.bodyless = method == "HEAD" or self.status < 200 or self.status in _NO_BODY
        self.stream = UpstreamStream(gw.upstream, address, conn, media, keep_alive) if chunked else None
        self._gw = gw
        self._address = address
        self._conn = conn
        self._keep_alive = keep_alive
        self.given_back = False
        if not chunked and self.length is None and not self.bodyless:
            self._keep_alive = False  # the body runs to the connection's end

    @property
    def reusable(self) -> bool:
        return self._keep_alive and self.stream is None  # a chunked stream gives itself back at its end

    def give_back(self) -> None:
        self.given_back = True
        self._gw.upstream.give_back(self._address, self._conn, True)

    async def pieces(self) -> Any:
        """The body a piece at a time; ``UpstreamError`` when the container broke it off."""
        if self.bodyless:
            return
        if self.stream is not None:
            while piece := await self.stream.read():
                yield piece
            self.given_back = self.stream.complete
            return
        left = self.length
        reader = self._conn.reader
        while left is None or left > 0:
            try:
                piece = await reader.read(_PIECE if left is None else min(left, _PIECE))
            except OSError as exc:
                raise UpstreamError(f"the container's answer broke off: {exc}") from exc
            if not piece:
                if left is None:
                    return
                raise UpstreamError(f"the container's answer broke off {left} bytes short")
            if left is not None:
                left -= len(piece)
            yield piece


async def _reply_head(conn: _Connection, pump: asyncio.Future[None], lease: Lease, gw: Gateway, method: str) -> _Reply:
    """The answer's head; the request's own failure (413, a caller gone) when that comes first."""
    reading = asyncio.ensure_future(conn.reader.readuntil(b"\r\n\r\n"))
    either: set[asyncio.Future[Any]] = {reading, pump}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            pump.result()  # the pump only ends by failing: the body was refused, or the caller left
        return _Reply(gw, lease.address, conn, await reading, method)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        raise await container_failure(lease, UpstreamError(f"container closed the connection: {exc}")) from None
    finally:
        _settle(reading)


async def _relay_body(reply: _Reply, answer: _Answer, pump: asyncio.Future[None]) -> None:
    """Send the answer's body on; stop when the caller leaves (the connection to the container closes)."""
    relay = asyncio.ensure_future(_pieces_to(reply, answer))
    either: set[asyncio.Future[Any]] = {relay, pump}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not relay.done():
            pump.result()  # the caller left (``_CallerGone``), or sent too much (413, now only a cut-off)
            await relay
        try:
            relay.result()
        except UpstreamError:
            return  # cut off: the caller sees an incomplete answer; the container's log says why
    finally:
        _settle(relay)


async def _pieces_to(reply: _Reply, answer: _Answer) -> None:
    async for piece in reply.pieces():
        await answer.body(piece, True)
    await answer.body(b"", False)


def _settle(task: asyncio.Future[Any]) -> None:
    """Cancel a helper task, or read its failure if it had one, so none is left unread (and logged as such)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _declared_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise ApiError(400, "Content-Length is not a number") from None
    return None
