"""The pieces of web apps that need no server: WebSocket framing, ``/asgi/`` routes, the decorators."""

from __future__ import annotations

import asyncio

import pytest

import cove
from cove._wire import websocket as ws
from cove.exceptions import ConfigError
from cove.gateway._asgi_route import parse_route
from cove.gateway._errors import ApiError


def _read(data: bytes, *, masked: bool, max_size: int = 1 << 20) -> list[tuple[int, bytes]]:
    """Every message and control frame in ``data``, as a ``FrameReader`` reads them."""
    buffer = bytearray(data)

    async def readexactly(size: int) -> bytes:
        if len(buffer) < size:
            raise EOFError
        piece = bytes(buffer[:size])
        del buffer[:size]
        return piece

    async def run() -> list[tuple[int, bytes]]:
        reader = ws.FrameReader(readexactly, max_size, masked=masked)
        out = []
        while buffer:
            out.append(await reader.next())
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_frames_round_trip_masked_and_not(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert _read(ws.frame(ws.BINARY, payload, mask=True), masked=True) == [(ws.BINARY, payload)]
    assert _read(ws.frame(ws.BINARY, payload, mask=False), masked=False) == [(ws.BINARY, payload)]


def test_fragments_are_joined_around_control_frames() -> None:
    first = bytes([0x01, 0x03]) + b"abc"  # TEXT, not final
    ping = ws.frame(ws.PING, b"hi", mask=False)
    last = bytes([0x80, 0x02]) + b"de"  # CONTINUATION, final
    assert _read(first + ping + last, masked=False) == [(ws.PING, b"hi"), (ws.TEXT, b"abcde")]


def test_protocol_errors_carry_their_close_codes() -> None:
    with pytest.raises(ws.WebSocketError) as unmasked:
        _read(ws.frame(ws.TEXT, b"x", mask=False), masked=True)
    assert unmasked.value.code == ws.PROTOCOL_ERROR
    with pytest.raises(ws.WebSocketError) as big:
        _read(ws.frame(ws.BINARY, b"x" * 100, mask=False), masked=False, max_size=10)
    assert big.value.code == ws.TOO_BIG
    with pytest.raises(ws.WebSocketError) as text:
        _read(ws.frame(ws.TEXT, b"\xff", mask=False), masked=False)
    assert text.value.code == ws.INVALID_DATA


def test_handshake_key_and_close_payloads() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, 1.3
    assert ws.parse_close(ws.close_payload(4001, "bye")) == (4001, "bye")
    assert ws.parse_close(b"") == (ws.NO_STATUS, "")
    assert ws.parse_close(ws.close_payload(1006)) == (ws.NORMAL, "")  # a reserved code is never sent
    assert len(ws.close_payload(1000, "é" * 100)) <= 125


def test_routes_under_the_prefix() -> None:
    route = parse_route("/asgi/shop/items/1")
    assert (route.name, route.version, route.mount, route.rest) == ("shop", None, "/asgi/shop", "/items/1")
    pinned = parse_route("/asgi/shop/v3/docs")
    assert (pinned.version, pinned.mount, pinned.rest) == (3, "/asgi/shop/v3", "/docs")
    assert parse_route("/asgi/shop").rest == "" and parse_route("/asgi/shop/v2").rest == ""
    assert parse_route("/asgi/shop/version/1").version is None
    with pytest.raises(ApiError):
        parse_route("/asgi/")


def test_the_decorators_keep_one_config_and_refuse_what_means_nothing() -> None:
    @cove.asgi(cpu=0.5, concurrent_requests=8)
    def web() -> object:
        return "an app"

    @cove.wsgi
    def legacy() -> object:
        return "a wsgi app"

    assert web.kind == legacy.kind == "asgi"
    assert (web.interface, legacy.interface) == ("asgi", "wsgi")
    assert web.config.cpu_millis == 500 and web.config.concurrent_requests == 8
    assert legacy.config.timeout == cove.endpoint(name="e")(lambda: None).config.timeout  # an endpoint's defaults
    assert web() == "an app"
    with pytest.raises(ConfigError, match="inputs"):
        cove.asgi(inputs=object)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="not a class"):
        cove.asgi(type("App", (), {}))
