"""One WebSocket of a web app: the RFC 6455 server end, spoken to the app as ASGI ``websocket`` events.

The handshake waits for the app: ``websocket.accept`` answers 101 (with the
subprotocol and headers the app chose), ``websocket.close`` before it a 403,
and ``websocket.http.response.*`` any other answer. Once accepted, a task reads
frames into a short queue the app's ``receive`` takes from; a full queue stops
the reading, so a peer that sends faster than the app reads is held back by
TCP rather than by memory here. Pings are answered on the spot, and a close
from either side is answered as the RFC asks before the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib

from cove._wire import websocket as ws
from cove.runner._asgi_http import ClientDisconnected, plain_response, report_failure, status_line
from cove.runner._asgi_request import RequestHead
from cove.runner._conn_input import ConnInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_QUEUED = 16  # messages read ahead of the app
_CLOSE_WAIT = 2.0  # seconds the peer has to answer a close before the connection is cut
# The handshake's own headers, which the runner writes: an app's copies of them are dropped.
_HANDSHAKE_HEADERS = frozenset({b"sec-websocket-accept", b"sec-websocket-protocol", b"upgrade", b"connection"})


def handshake_problem(head: RequestHead) -> str | None:
    """Why an upgrade request is not a valid WebSocket opening handshake (None when it is)."""
    if head.method != "GET":
        return "a WebSocket opens with GET"
    if b"upgrade" not in (head.header(b"connection") or b"").lower():
        return "Connection: Upgrade is missing"
    if head.header(b"sec-websocket-version") != b"13":
        return "only WebSocket version 13 is served"
    if not head.header(b"sec-websocket-key"):
        return "Sec-WebSocket-Key is missing"
    return None


class WebSocketSession:
    """Runs the app on one WebSocket; the connection ends with it."""

    def __init__(
        self, conn: ConnInput, writer: asyncio.StreamWriter, head: RequestHead, scope: dict[str, Any], max_size: int
    ) -> None:
        self._conn = conn
        self._writer = writer
        self._head = head
        self._scope = scope
        self._max_size = max_size
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUED)
        self._queue.put_nowait({"type": "websocket.connect"})
        self._accepted = False
        self._responded = False  # an HTTP answer instead of the upgrade
        self._denial: list[bytes] = []
        self._close_sent = False
        self._ended: dict[str, Any] | None = None  # the disconnect event, once the peer is gone
        self._reader: asyncio.Task[None] | None = None

    async def run(self, app: Any) -> None:
        protocols = self._head.header(b"sec-websocket-protocol")
        self._scope["subprotocols"] = [p.strip().decode("latin-1") for p in protocols.split(b",")] if protocols else []
        self._scope["extensions"] = {"websocket.http.response": {}}
        try:
            await app(self._scope, self._receive, self._send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            report_failure(exc)
            if not self._accepted and not self._responded:
                await self._write(plain_response(500, "Internal Server Error"))
                self._responded = True
            elif self._accepted and not self._close_sent:
                await self._close(ws.INTERNAL_ERROR, "")
        finally:
            await self._end()

    async def _end(self) -> None:
        if not self._accepted and not self._responded:
            with contextlib.suppress(ClientDisconnected):
                await self._write(plain_response(403, "the app did not accept the WebSocket"))
        elif self._accepted and not self._close_sent and self._ended is None:
            with contextlib.suppress(ClientDisconnected):
                await self._close(ws.NORMAL, "")
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, _CLOSE_WAIT)  # the peer's answering close
        self._writer.close()

    async def _receive(self) -> dict[str, Any]:
        if self._ended is not None and self._queue.empty():
            return self._ended
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if self._accepted or self._responded:
                raise RuntimeError("websocket.accept after the handshake was answered")
            await self._accept(message)
        elif kind == "websocket.send":
            if not self._accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if self._close_sent or self._ended is not None:
                raise ClientDisconnected("the WebSocket is closed")
            text = message.get("text")
            data = ws.frame(ws.TEXT, text.encode(), mask=False) if text is not None else None
            await self._write(data or ws.frame(ws.BINARY, bytes(message.get("bytes") or b""), mask=False))
        elif kind == "websocket.close":
            if self._accepted:
                if not self._close_sent and self._ended is None:
                    await self._close(int(message.get("code") or ws.NORMAL), str(message.get("reason") or ""))
            elif not self._responded:
                self._responded = True
                await self._write(plain_response(403, "the app refused the WebSocket"))
        elif kind in ("websocket.http.response.start", "websocket.http.response.body"):
            await self._deny(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    async def _accept(self, message: dict[str, Any]) -> None:
        key = (self._head.header(b"sec-websocket-key") or b"").decode("latin-1")
        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
            b"sec-websocket-accept: %s\r\n" % ws.accept_key(key).encode(),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            lines.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode("latin-1"))
        for name, value in message.get("headers") or []:
            if bytes(name).lower() not in _HANDSHAKE_HEADERS:
                lines.append(b"%s: %s\r\n" % (bytes(name), bytes(value)))
        self._accepted = True
        await self._write(b"".join(lines) + b"\r\n")
        self._reader = asyncio.ensure_future(self._read_frames())

    async def _deny(self, message: dict[str, Any]) -> None:
        """``websocket.http.response.*``: an HTTP answer instead of the upgrade, sent once it is complete."""
        if self._accepted or (self._responded and not self._denial):
            raise RuntimeError("an HTTP answer after the handshake was answered")
        if message["type"] == "websocket.http.response.start":
            self._responded = True
            lines = [status_line(int(message["status"]))]
            lines += [b"%s: %s\r\n" % (bytes(k), bytes(v)) for k, v in message.get("headers") or []]
            self._denial = [b"".join(lines)]
            return
        self._denial.append(bytes(message.get("body") or b""))
        if not message.get("more_body"):
            head, body = self._denial[0], b"".join(self._denial[1:])
            self._denial = []
            await self._write(head + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))

    async def _read_frames(self) -> None:
        reader = ws.FrameReader(self._conn.read_exactly, self._max_size, masked=True)
        code, reason = ws.ABNORMAL, ""
        try:
            while True:
                opcode, payload = await reader.next()
                if opcode == ws.TEXT:
                    await self._queue.put({"type": "websocket.receive", "text": payload.decode()})
                elif opcode == ws.BINARY:
                    await self._queue.put({"type": "websocket.receive", "bytes": payload})
                elif opcode == ws.PING:
                    await self._write(ws.frame(ws.PONG, payload, mask=False))
                elif opcode == ws.CLOSE:
                    code, reason = ws.parse_close(payload)
                    if not self._close_sent:
                        await self._close(code if code != ws.NO_STATUS else ws.NORMAL, "")
                    return
        except ws.WebSocketError as exc:
            code, reason = exc.code, str(exc)
            with contextlib.suppress(ClientDisconnected):
                await self._close(exc.code, str(exc))
        except (EOFError, ClientDisconnected, ConnectionError):
            pass
        finally:
            self._ended = {"type": "websocket.disconnect", "code": code, "reason": reason}
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(self._ended)

    async def _close(self, code: int, reason: str) -> None:
        self._close_sent = True
        await self._write(ws.frame(ws.CLOSE, ws.close_payload(code, reason), mask=False))

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            raise ClientDisconnected("the peer has gone") from None
