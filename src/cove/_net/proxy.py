"""Relaying an ASGI HTTP request to another server over httpx, streaming both ways.

Two hops do this: a follower gateway forwarding to the leader, and a worker's
relay forwarding its containers' calls to the gateway. They share what must
agree with HTTP itself: which headers belong to one connection only, how the
upstream URL is formed, and how an answer is streamed back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import httpx

# Headers that describe one connection, not the message: never passed on (RFC 9110, 7.6.1), and the
# Host, which names the server this hop was sent to.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def upstream_url(base_url: str, scope: Mapping[str, Any]) -> str:
    """``base_url`` plus the request's raw path and query, unchanged."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return base_url.rstrip("/") + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def request_headers(scope: Mapping[str, Any], also_drop: frozenset[bytes] = frozenset()) -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers (and not ``also_drop``)."""
    return [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP and k.lower() not in also_drop]


async def stream_response(
    response: httpx.Response, send: Send, keep_header: Callable[[bytes], bool] | None = None
) -> None:
    """Send an upstream answer on as it arrives: its status, end-to-end headers and raw body.

    ``keep_header`` (given a lower-case name) narrows the headers further, where the upstream is not
    trusted to speak for this server (a sandbox's agent).
    """
    headers = [
        (k, v)
        for k, v in response.headers.raw
        if k.lower() not in HOP_BY_HOP and (keep_header is None or keep_header(k.lower()))
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def stream_until_gone(
    response: httpx.Response, send: Send, receive: Receive, keep_header: Callable[[bytes], bool] | None = None
) -> None:
    """``stream_response``, stopped when the caller hangs up; call it once the request's body was sent.

    The server drops what is sent to a closed connection without a word, so an
    endless answer (a generator's items) would otherwise be read on for
    nobody, and the container would never learn that its caller left.
    """
    relay = asyncio.ensure_future(stream_response(response, send, keep_header))
    watch = asyncio.ensure_future(_gone(receive))
    try:
        await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        relay.cancel()  # a no-op once it is done
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def _gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
