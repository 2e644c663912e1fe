"""One HTTP request to a web app: the ASGI ``receive`` and ``send`` of its exchange.

The body reaches the app as it arrives and the answer leaves as the app
sends it: with the app's ``Content-Length`` when it gives one, chunked
otherwise, each piece written before the next is asked for (``drain``), so a
slow reader holds a streaming app back instead of filling memory here.

After the body, ``receive`` waits for the caller to hang up: the read that
notices it keeps any bytes that arrive (``ConnInput``), and a ``send`` after
that raises ``ClientDisconnected`` (an ``OSError``, as the ASGI spec asks), so
an endless stream stops when nobody reads it.
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus

from cove.runner._asgi_request import Body, RequestHead
from cove.runner._conn_input import ConnInput
from cove.runner._http import HttpError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NO_BODY_STATUSES = frozenset({204, 304})
# The app's headers that describe this hop's framing, which the runner sets itself.
_FRAMING = frozenset({b"connection", b"transfer-encoding", b"keep-alive"})
_LAST_CHUNK = b"0\r\n\r\n"


class ClientDisconnected(OSError):
    """``send`` on a request whose caller has gone."""


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("latin-1"))


def plain_response(status: int, text: str, keep_alive: bool = False) -> bytes:
    """A complete text answer from the runner itself (the app's failure, a bad request)."""
    body = text.encode()
    close = b"" if keep_alive else b"connection: close\r\n"
    return status_line(status) + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        close,
        body,
    )


class HttpExchange:
    """Runs the app on one request; :meth:`run` says whether the connection may take another."""

    def __init__(self, conn: ConnInput, writer: asyncio.StreamWriter, head: RequestHead, scope: dict[str, Any]) -> None:
        self._conn = conn
        self._writer = writer
        self._head = head
        self._scope = scope
        self._body: Body | None = None
        self._sent_last_piece = False
        self._continue_sent = not head.expect_continue
        self._started = False
        self._complete = False
        self._pending_head = b""
        self._chunked = False
        self._bodyless = head.method == "HEAD"
        self._keep_alive = head.keep_alive
        self._gone = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._refused: HttpError | None = None

    async def run(self, app: Any, max_body: int) -> bool:
        try:
            self._body = Body(self._conn, self._head, max_body)
        except HttpError as exc:
            await self._write(plain_response(exc.status, exc.message))
            return False
        try:
            await app(self._scope, self._receive, self._send)
        except ClientDisconnected:
            return False
        except Exception as exc:
            if self._refused is None:  # an app that fails on a body the runner refused is not at fault
                report_failure(exc)
            if self._complete:  # it answered first (Starlette sends its 500, then raises): the connection is fine
                return await self._finish()
            if self._started:
                return False  # half an answer: only closing the connection tells the caller
            refused = self._refused
            status, text = (refused.status, refused.message) if refused else (500, "Internal Server Error")
            await self._write(plain_response(status, text))
            return False
        finally:
            self._gone.set()
            if self._watch is not None:
                self._watch.cancel()
        return await self._finish()

    async def _finish(self) -> bool:
        if self._refused is not None and not self._started:
            await self._write(plain_response(self._refused.status, self._refused.message))
            return False
        if not self._complete:
            if not self._started:
                print("cove: the app returned without answering the request", file=sys.stderr)
                await self._write(plain_response(500, "Internal Server Error"))
            return False
        return self._keep_alive

    async def _receive(self) -> dict[str, Any]:
        body = self._body
        assert body is not None
        if self._sent_last_piece or self._refused is not None:
            await self._until_gone()
            return {"type": "http.disconnect"}
        if not self._continue_sent:
            self._continue_sent = True
            await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            piece = await body.next()
        except HttpError as exc:
            self._refused = exc
            self._keep_alive = False
            return {"type": "http.disconnect"}
        except (EOFError, ConnectionError):
            self._gone.set()
            return {"type": "http.disconnect"}
        self._sent_last_piece = body.done
        return {"type": "http.request", "body": piece, "more_body": not body.done}

    async def _until_gone(self) -> None:
        """Return once the caller hung up, or the answer is complete (the request is over either way)."""
        if self._watch is None and not self._gone.is_set():
            self._watch = asyncio.ensure_future(self._watch_peer())
        await self._gone.wait()

    async def _watch_peer(self) -> None:
        # Only once the body was read: nothing else reads the connection until the answer is complete.
        if not await self._conn.fill():
            self._gone.set()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._started:
                raise RuntimeError("http.response.start sent twice")
            self._start(int(message["status"]), message.get("headers") or [])
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP request")
        if not self._started or self._complete:
            raise RuntimeError("http.response.body " + ("before the start" if not self._started else "after the end"))
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        out = self._pending_head
        self._pending_head = b""
        if body and not self._bodyless:
            out += b"%x\r\n%s\r\n" % (len(body), body) if self._chunked else body
        if not more:
            self._complete = True
            if self._chunked:
                out += _LAST_CHUNK
        if self._gone.is_set() and not self._complete:
            raise ClientDisconnected("the caller has gone")
        if out:
            await self._write(out)

    def _start(self, status: int, headers: list[Any]) -> None:
        self._started = True
        if self._body is not None and not self._body.done:
            self._keep_alive = False  # the rest of the body would stand where the next request starts
        lines = [status_line(status)]
        has_length = False
        for name, value in headers:
            name = bytes(name).lower()
            value = bytes(value)
            if b"\n" in name or b"\r" in name or b"\n" in value or b"\r" in value or b":" in name:
                raise RuntimeError(f"header {name!r} has a line break or a colon in it")
            if name in _FRAMING:
                continue
            has_length = has_length or name == b"content-length"
            lines.append(b"%s: %s\r\n" % (name, value))
        if status < 200 or status in _NO_BODY_STATUSES:
            self._bodyless = True
        elif not has_length and not self._bodyless:
            self._chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        if not self._keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self._pending_head = b"".join(lines)

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            self._gone.set()
            raise ClientDisconnected("the caller has gone") from None


def report_failure(exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(f"cove: the app raised {type(exc).__name__}:\n{text}")
