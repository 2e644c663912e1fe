"""WebSockets under ``/asgi/{name}/...``: the caller's WebSocket relayed, message by message, to a container's.

uvicorn speaks the protocol with the caller; the gateway opens the same
WebSocket on a container (it is the client there, framing with
``cove._wire.websocket``) and passes text and binary messages both ways, and
the close code and reason of whichever side closes first. The handshake is
the app's: it is forwarded, and the caller is accepted only once the app
accepted (with the subprotocol and headers it chose); an app that refuses
(or an unknown name, a missing token) is answered with an HTTP response
(ASGI's ``websocket.http.response``) instead of the upgrade.

A WebSocket holds one slot of its container for as long as it is open, so it
counts as one request in flight for the autoscaler and against
``concurrent_requests``. The deployment's ``timeout`` bounds the wait for a
container and the handshake, not the conversation.

Every gateway opens them: one that does not lead relays to the containers it
sees ready, asking the leader for one when none is. A WebSocket cannot be
handed on to the leader, so where a follower cannot reach a container itself
(no leader answers its ask, the containers listen on another host's unix
sockets) it is refused with 503, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .._net.proxy import HOP_BY_HOP
from .._wire import websocket as ws
from ._asgi_route import Route, acquire, parse_route, relayed_headers, request_head, resolve, slots_of
from ._errors import ApiError, error_body
from ._follower_slots import ForwardToLeader
from ._invoke import container_failure, waiting_errors
from ._state import Gateway
from ._upstream import UpstreamError, _Connection

_HANDSHAKE = frozenset({b"sec-websocket-accept", b"sec-websocket-protocol", b"sec-websocket-extensions"})
_MAX_MESSAGE = 16 * 1024 * 1024  # uvicorn's own limit on what a caller may send
_NOT_HERE = (
    "this gateway cannot reach a container of this web app now (no leading gateway answers, or its containers"
    " listen only on another host): open the WebSocket on the leading gateway, or retry"
)


async def handle_websocket(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Relay one WebSocket to the app, or refuse it with the reason."""
    try:
        if (await receive())["type"] != "websocket.connect":
            return
        route = parse_route(scope["path"])
        if not route.rest:
            raise ApiError(404, f"a WebSocket of a web app is under its prefix: {route.mount}/...")
        await _open(gw, scope, receive, send, route)
    except ApiError as exc:
        body = error_body(exc.status, exc.message, exc.type)
        await _refuse(scope, send, exc.status, [(b"content-type", b"application/json")], body)


async def _open(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any, route: Route) -> None:
    target = await resolve(gw, scope, route)
    deployment = target.deployment
    try:
        lease, timeout, deadline = await acquire(gw, deployment)
    except ForwardToLeader:
        raise ApiError(503, _NOT_HERE) from None
    slots = slots_of(gw)
    conn: _Connection | None = None
    served = False
    try:
        with waiting_errors(gw.scheduler, deployment, timeout), gw.deadlines.at(deadline):
            try:
                conn = await gw.upstream.borrow(lease.address)
                key = ws.new_key()
                upgrade = [
                    (b"connection", b"Upgrade"),
                    (b"upgrade", b"websocket"),
                    (b"sec-websocket-key", key.encode()),
                    (b"sec-websocket-version", b"13"),
                ]
                conn.writer.write(request_head("GET", scope, relayed_headers(scope, route, target) + upgrade))
                status, headers, body = await _handshake_answer(conn)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                failure = UpstreamError(f"container closed the connection: {exc}")
                raise (await container_failure(lease, failure)) from None
        served = True
        if status != 101:
            await _refuse(scope, send, status, headers, body)
            return
        if dict(headers).get(b"sec-websocket-accept") != ws.accept_key(key).encode():
            raise await container_failure(lease, UpstreamError("the container's handshake answer is not valid"))
        subprotocol = dict(headers).get(b"sec-websocket-protocol")
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": subprotocol.decode("latin-1") if subprotocol else None,
                "headers": [(k, v) for k, v in headers if k not in _HANDSHAKE],
            }
        )
        await _converse(conn, receive, send)
    finally:
        if conn is not None:
            conn.close()  # a WebSocket's connection is never reused
        slots.release(lease, served=served)


async def _handshake_answer(conn: _Connection) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The container's answer to the upgrade: its status, end-to-end headers and (when it refused) body."""
    head = await conn.reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name not in HOP_BY_HOP:
            headers.append((name, value))
    status = int(parts[1])
    body = await conn.reader.readexactly(length) if status != 101 and length else b""
    return status, headers, body


async def _refuse(
    scope: dict[str, Any], send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """An HTTP answer instead of the upgrade; a plain 403 where the server cannot send one."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": ws.POLICY_VIOLATION})
        return
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _converse(conn: _Connection, receive: Any, send: Any) -> None:
    """Pass messages both ways until one side closes; the other then gets its close code and reason."""
    to_app = asyncio.ensure_future(_caller_to_app(conn, receive))
    to_caller = asyncio.ensure_future(_app_to_caller(conn, send))
    try:
        done, _ = await asyncio.wait({to_app, to_caller}, return_when=asyncio.FIRST_COMPLETED)
        if to_caller in done and to_caller.exception() is None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(to_app), 1.0)  # the caller's close, answering the app's
    finally:
        for task in (to_app, to_caller):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def _caller_to_app(conn: _Connection, receive: Any) -> None:
    writer = conn.writer
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            code = int(message.get("code") or ws.NORMAL)
            with contextlib.suppress(OSError):
                writer.write(ws.frame(ws.CLOSE, ws.close_payload(code, str(message.get("reason") or "")), mask=True))
                await writer.drain()
            return
        if kind != "websocket.receive":
            continue
        text = message.get("text")
        data = ws.frame(ws.TEXT, text.encode(), mask=True) if text is not None else None
        writer.write(data or ws.frame(ws.BINARY, bytes(message.get("bytes") or b""), mask=True))
        await writer.drain()


async def _app_to_caller(conn: _Connection, send: Any) -> None:
    reader = ws.FrameReader(conn.reader.readexactly, _MAX_MESSAGE, masked=False)
    code, reason = ws.GOING_AWAY, "the app's container went away"
    try:
        while True:
            opcode, payload = await reader.next()
            if opcode == ws.TEXT:
                await send({"type": "websocket.send", "text": payload.decode()})
            elif opcode == ws.BINARY:
                await send({"type": "websocket.send", "bytes": payload})
            elif opcode == ws.PING:
                conn.writer.write(ws.frame(ws.PONG, payload, mask=True))
            elif opcode == ws.CLOSE:
                code, reason = ws.parse_close(payload)
                if code == ws.NO_STATUS:
                    code = ws.NORMAL
                conn.writer.write(ws.frame(ws.CLOSE, ws.close_payload(code), mask=True))  # the answering close
                return
    except ws.WebSocketError as exc:
        code, reason = exc.code, f"the app's container broke the protocol: {exc}"
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})
