"""A web app's request, read off the connection: its head, its ASGI scope and its body as it streams.

The bounds are the endpoint server's (``_http``): lines, header count and
body size are limited and a framing error closes the connection. Unlike an
endpoint's, a web app's request may come with a chunked body (the gateway
streams a body whose length it does not know) and keeps every header,
repeated ones included, in order.
"""

from __future__ import annotations

from urllib.parse import unquote

from cove._wire import webapp
from cove.runner._conn_input import ConnInput, LineTooLong
from cove.runner._http import MAX_HEADERS, MAX_LINE, HttpError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_HEAD = MAX_LINE * 8  # a whole request head: the request line and its headers
_PIECE = 64 * 1024  # the most of a body handed to the app at once
_ASGI = {"version": "3.0", "spec_version": "2.4"}


class RequestHead:
    """The request line and headers of one request."""

    __slots__ = ("chunked", "expect_continue", "headers", "keep_alive", "length", "method", "target", "websocket")

    def __init__(self, method: str, target: bytes, keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.keep_alive = keep_alive
        self.headers: list[tuple[bytes, bytes]] = []  # lower-case names, in order, repeats kept
        self.length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.websocket = False  # ``Upgrade: websocket``

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


async def read_head(conn: ConnInput) -> RequestHead | None:
    """The next request's head; None when the peer closed the connection between requests."""
    try:
        data = await conn.read_until(b"\r\n\r\n", MAX_HEAD)
    except LineTooLong:
        raise HttpError(431, "BadRequest", "request head too long") from None
    if data is None:
        return None
    lines = data[:-4].split(b"\r\n")
    while lines and not lines[0]:  # stray CRLFs between requests, as RFC 9112 allows
        lines.pop(0)
    if not lines:
        return None
    return _parse(lines)


def _parse(lines: list[bytes]) -> RequestHead:
    parts = lines[0].split(b" ")
    if len(parts) != 3 or len(lines[0]) > MAX_LINE:
        raise HttpError(400, "BadRequest", "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505, "BadRequest", "only HTTP/1.1 and HTTP/1.0 are served")
    if not target.startswith(b"/"):
        raise HttpError(400, "BadRequest", "the request target must be a path")
    head = RequestHead(method.decode("ascii", "replace"), target, version == b"HTTP/1.1")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "BadRequest", "too many header lines")
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:] in (b" ", b"\t") or name[:1] in (b" ", b"\t") or len(line) > MAX_LINE:
            raise HttpError(400, "BadRequest", "malformed header line")
        _take(head, name.lower(), value.strip())
    if head.chunked and head.length is not None:
        raise HttpError(400, "BadRequest", "both Content-Length and Transfer-Encoding")
    return head


def _take(head: RequestHead, name: bytes, value: bytes) -> None:
    if name == b"content-length":
        if not value.isdigit() or len(value) > 18 or (head.length is not None and head.length != int(value)):
            raise HttpError(400, "BadRequest", "invalid Content-Length")
        head.length = int(value)
    elif name == b"transfer-encoding":
        if value.lower() != b"chunked":
            raise HttpError(501, "BadRequest", "only the chunked transfer coding is accepted")
        head.chunked = True
        return  # framing of this hop only
    elif name == b"connection":
        tokens = value.lower()
        if b"close" in tokens:
            head.keep_alive = False
        elif b"keep-alive" in tokens:
            head.keep_alive = True
    elif name == b"upgrade":
        head.websocket = value.lower() == b"websocket"
    elif name == b"expect":
        if value.lower() != b"100-continue":
            raise HttpError(417, "BadRequest", "unsupported Expect header")
        head.expect_continue = True
        return
    head.headers.append((name, value))


def scope_of(head: RequestHead, kind: str, peer: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of a request (``kind`` ``http`` or ``websocket``), the gateway's own headers taken off.

    As behind uvicorn's ``--root-path``, ``path`` is the whole path and
    ``root_path`` the part the app is mounted at, so frameworks route on the
    rest and build their URLs (``/docs``, redirects) under the prefix.
    """
    raw_path, _, query = head.target.partition(b"?")
    root_path = ""
    client = peer
    scheme = "http"
    headers = []
    for name, value in head.headers:
        if not name.startswith(webapp.PRIVATE_PREFIX):
            headers.append((name, value))
        elif name == webapp.ROOT_PATH:
            root_path = value.decode("latin-1")
        elif name == webapp.CLIENT:
            host, _, port = value.decode("latin-1").rpartition(":")
            client = (host.strip("[]"), int(port)) if port.isdigit() else client
        elif name == webapp.SCHEME:
            scheme = value.decode("latin-1")
    if kind == "websocket":
        scheme = "wss" if scheme == "https" else "ws"
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": _ASGI,
        "http_version": "1.1",
        "scheme": scheme,
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": None,
        "state": dict(state),
    }
    if kind == "http":
        scope["method"] = head.method
    return scope


class Body:
    """A request's body, a piece at a time as it arrives; at most ``limit`` bytes in all (413 beyond)."""

    __slots__ = ("_chunk_left", "_conn", "_left", "_limit", "_read", "chunked", "done")

    def __init__(self, conn: ConnInput, head: RequestHead, limit: int) -> None:
        self._conn = conn
        self.chunked = head.chunked
        self._left = head.length or 0
        self._chunk_left = 0
        self._limit = limit
        self._read = 0
        self.done = not self.chunked and not self._left
        if self._left > limit:
            raise HttpError(413, "PayloadTooLarge", f"body of {self._left} bytes exceeds the limit of {limit}")

    async def next(self) -> bytes:
        """The next piece (``b""`` once done); ``EOFError`` when the peer left mid-body."""
        if self.done:
            return b""
        piece = await (self._next_chunked() if self.chunked else self._next_fixed())
        self._read += len(piece)
        if self._read > self._limit:
            raise HttpError(413, "PayloadTooLarge", f"body exceeds the limit of {self._limit} bytes")
        return piece

    async def _next_fixed(self) -> bytes:
        piece = await self._conn.read_some(min(self._left, _PIECE))
        self._left -= len(piece)
        self.done = not self._left
        return piece

    async def _next_chunked(self) -> bytes:
        if not self._chunk_left:
            line = await self._conn.read_until(b"\r\n", MAX_LINE)
            if line is None:
                raise EOFError("the connection ended inside the body")
            size = _chunk_size(line)
            if size == 0:
                while await self._conn.read_until(b"\r\n", MAX_LINE) not in (b"\r\n", None):
                    pass  # trailers: dropped
                self.done = True
                return b""
            self._chunk_left = size
        piece = await self._conn.read_some(min(self._chunk_left, _PIECE))
        self._chunk_left -= len(piece)
        if not self._chunk_left and await self._conn.read_exactly(2) != b"\r\n":
            raise HttpError(400, "BadRequest", "a chunk does not end with CRLF")
        return piece


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 15 or digits.strip(b"0123456789abcdefABCDEF"):
        raise HttpError(400, "BadRequest", "malformed chunk size line")
    return int(digits, 16)
