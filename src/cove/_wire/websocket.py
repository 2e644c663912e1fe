"""RFC 6455 WebSocket framing, shared by both ends of the gateway → container hop.

A WebSocket of an ``@asgi`` app crosses two connections: the caller's to the
gateway (uvicorn speaks the protocol there) and the gateway's to the
container, where the runner, which has only the standard library, is the
server. The gateway is the client of the second connection, so it masks what
it sends and the runner unmasks it; both read and write frames with this
module, so the two ends cannot disagree on the framing. No extensions
(``permessage-deflate``) are negotiated on this hop: it is a local socket.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from ..exceptions import CoveError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

# Close codes (RFC 6455, 7.4.1) this module and its callers use.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS = 1005  # a close frame without a code; never sent
ABNORMAL = 1006  # the connection ended without a close frame; never sent
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTROL = frozenset({CLOSE, PING, PONG})
_DATA = frozenset({TEXT, BINARY})
# Codes an endpoint may put in a close frame (7.4.1, 7.4.2): 1004-1006 and 1015 are reserved.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class WebSocketError(CoveError, ValueError):
    """The peer broke the protocol; ``code`` is the close code that says how."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_key() -> str:
    """A client's ``Sec-WebSocket-Key``: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + _GUID).digest()).decode()


def _masked(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated; one big-integer XOR, not a Python loop per byte."""
    size = len(data)
    if not size:
        return data
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(size, "little")


def frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame; a client (``mask=True``) masks it with a fresh key, as the RFC requires."""
    size = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask:
        key = os.urandom(4)
        return head + key + _masked(payload, key)
    return head + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload; a code that may not be sent becomes 1000, a reason is cut to fit 123 bytes."""
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        code = NORMAL
    data = reason.encode()[:123]
    while data:
        try:
            data.decode()
            break
        except UnicodeDecodeError:  # cut inside a character: drop its first bytes
            data = data[:-1]
    return struct.pack("!H", code) + data


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame (1005 when it has none)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise WebSocketError(PROTOCOL_ERROR, "a close frame with a one-byte payload")
    (code,) = struct.unpack("!H", payload[:2])
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise WebSocketError(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketError(INVALID_DATA, "a close reason that is not UTF-8") from None


class FrameReader:
    """Reads messages: fragments joined, control frames returned as they come between them.

    ``readexactly`` is the connection's; ``masked`` says whether the peer must
    mask (a server reads a client's masked frames, and refuses unmasked ones).
    A message larger than ``max_size`` bytes is refused with 1009.
    """

    def __init__(self, readexactly: Callable[[int], Awaitable[bytes]], max_size: int, *, masked: bool) -> None:
        self._read = readexactly
        self._max = max_size
        self._masked = masked
        self._opcode: int | None = None  # of the data message whose fragments are arriving
        self._parts: list[bytes] = []
        self._size = 0

    async def next(self) -> tuple[int, bytes]:
        """The next whole data message (``TEXT`` or ``BINARY``) or control frame, with its payload."""
        while True:
            fin, opcode, payload = await self._frame()
            if opcode in _CONTROL:
                return opcode, payload
            if opcode == CONTINUATION:
                if self._opcode is None:
                    raise WebSocketError(PROTOCOL_ERROR, "a continuation frame outside a message")
            elif self._opcode is not None:
                raise WebSocketError(PROTOCOL_ERROR, "a new message began inside a fragmented one")
            else:
                self._opcode = opcode
            self._size += len(payload)
            if self._size > self._max:
                raise WebSocketError(TOO_BIG, f"a message larger than {self._max} bytes")
            self._parts.append(payload)
            if fin:
                kind, data = self._opcode, b"".join(self._parts)
                self._opcode, self._parts, self._size = None, [], 0
                if kind == TEXT:
                    try:
                        data.decode()
                    except UnicodeDecodeError:
                        raise WebSocketError(INVALID_DATA, "a text message that is not UTF-8") from None
                return kind, data

    async def _frame(self) -> tuple[bool, int, bytes]:
        first, second = await self._read(2)
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        if first & 0x70:
            raise WebSocketError(PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode not in _CONTROL and opcode not in _DATA and opcode != CONTINUATION:
            raise WebSocketError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        masked = bool(second & 0x80)
        if masked != self._masked:
            raise WebSocketError(PROTOCOL_ERROR, "a masked frame from the server" if masked else "an unmasked frame")
        size = second & 0x7F
        if opcode in _CONTROL and (size > 125 or not fin):
            raise WebSocketError(PROTOCOL_ERROR, "a control frame that is fragmented or over 125 bytes")
        if size == 126:
            (size,) = struct.unpack("!H", await self._read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self._read(8))
        if size > self._max:
            raise WebSocketError(TOO_BIG, f"a frame larger than {self._max} bytes")
        key = await self._read(4) if masked else b""
        payload = await self._read(size) if size else b""
        return fin, opcode, _masked(payload, key) if masked else payload
