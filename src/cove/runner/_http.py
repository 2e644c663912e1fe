"""Just enough HTTP/1.1 for the gateway to talk to a container.

The peer is the gateway, but the parser still treats every byte as untrusted:
bounded lines, bounded header count, bounded bodies, and no chunked bodies
(the gateway always knows the length, and refusing them keeps framing simple
and safe). A framing error closes the connection, since the next request's
start can no longer be found.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

MAX_LINE = 8192
MAX_HEADERS = 100
_KEPT = frozenset((b"x-cove-call-id", b"x-request-id", b"traceparent"))

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Content Too Large",
    414: b"URI Too Long",
    417: b"Expectation Failed",
    422: b"Unprocessable Content",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request that cannot be served; the connection closes after the answer."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


class Request:
    """One parsed request; slots because one is built per call on the hot path."""

    __slots__ = ("accept", "body", "call_id", "keep_alive", "method", "path", "request_id", "traceparent")

    def __init__(
        self,
        method: bytes,
        path: bytes,
        call_id: str | None,
        body: bytes,
        keep_alive: bool,
        accept: bytes = b"",
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.call_id = call_id
        self.body = body
        self.keep_alive = keep_alive
        self.accept = accept  # lower case; it picks a generator's stream format
        self.request_id = request_id  # the gateway's X-Request-Id: on every line the handler prints
        self.traceparent = traceparent  # the gateway's relay span, when it traces: the handler span's parent


def read_request(rfile: IO[bytes], send: object, max_body: int) -> Request | None:
    """Read one request; ``None`` when the peer closed the connection between requests.

    ``send`` is the socket's ``sendall``, used only to answer ``Expect: 100-continue``.
    """
    line = rfile.readline(MAX_LINE + 1)
    if line in (b"\r\n", b"\n"):  # a stray CRLF between requests is tolerated, as RFC 9112 asks
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise HttpError(414, "BadRequest", "request line too long")
    parts = line.split()
    if len(parts) != 3 or not line.endswith(b"\n"):
        raise HttpError(400, "BadRequest", "malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        keep_alive = True
    elif version == b"HTTP/1.0":
        keep_alive = False
    else:
        raise HttpError(505, "BadRequest", "only HTTP/1.1 and HTTP/1.0 are served")
    length: int | None = None
    kept: dict[bytes, str] = {}  # the call id, request id and traceparent, when sent
    accept = b""
    expect_continue = False
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if line == b"\r\n" or line == b"\n":
            break
        if not line:
            raise ConnectionResetError("peer closed the connection inside the headers")
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise HttpError(431, "BadRequest", "header line too long")
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:] in (b" ", b"\t") or name[:1] in (b" ", b"\t"):
            raise HttpError(400, "BadRequest", "malformed header line")
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            length = _content_length(value, length)
        elif name == b"transfer-encoding":
            raise HttpError(411, "LengthRequired", "Transfer-Encoding is not accepted; send a Content-Length")
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        elif name in _KEPT:
            kept[name] = value.decode("latin-1")
        elif name == b"accept":
            accept = value.lower()
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise HttpError(417, "BadRequest", "unsupported Expect header")
            expect_continue = True
    else:
        raise HttpError(431, "BadRequest", "too many header lines")
    body = b""
    if length:
        if length > max_body:
            raise HttpError(413, "PayloadTooLarge", f"body of {length} bytes exceeds the limit of {max_body}")
        if expect_continue:
            send(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[operator]
        body = rfile.read(length)
        if len(body) != length:
            raise ConnectionResetError("peer closed the connection inside the body")
    path = target.partition(b"?")[0]
    return Request(
        method,
        path,
        kept.get(b"x-cove-call-id"),
        body,
        keep_alive,
        accept,
        kept.get(b"x-request-id"),
        kept.get(b"traceparent"),
    )


def _content_length(value: bytes, earlier: int | None) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HttpError(400, "BadRequest", "invalid Content-Length")
    number = int(value)
    if earlier is not None and earlier != number:
        raise HttpError(400, "BadRequest", "conflicting Content-Length headers")
    return number


def response(status: int, payload: bytes, keep_alive: bool) -> bytes:
    """A complete JSON response; one buffer so it leaves in one ``sendall``."""
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        _REASONS.get(status, b"Unknown"),
        len(payload),
        b"" if keep_alive else b"Connection: close\r\n",
        payload,
    )


def error_payload(kind: str, message: str, traceback: str | None = None) -> bytes:
    """The error body every non-200 answer uses, so clients parse one shape."""
    error: dict[str, str] = {"type": kind, "message": message}
    if traceback is not None:
        error["traceback"] = traceback
    return json.dumps({"error": error}).encode()
