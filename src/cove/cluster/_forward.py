"""The hop from a gateway that does not lead to the leader: one kept-alive client, bodies streamed both ways."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from cove._net.proxy import request_headers, stream_until_gone, upstream_url

log = logging.getLogger("cove.cluster.forward")

FORWARDED = b"x-cove-forwarded"


async def unavailable(send: Any, message: str, retry_after: int = 2) -> None:
    """503 with the usual error body: the caller should retry once the cluster has a leader again."""
    body = json.dumps({"error": {"type": "NoLeader", "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Forwarder:
    """Relays ASGI HTTP requests to another gateway and streams the answer back."""

    def __init__(self) -> None:
        # No read timeout: worker long-polls, log follows and image builds legitimately take long.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def forward(self, base_url: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        url = upstream_url(base_url, scope)
        # The body is re-sent as a stream: its length is httpx's to declare.
        headers = request_headers(scope, also_drop=frozenset({b"content-length"}))
        headers.append((FORWARDED, b"1"))

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body"):
                    return

        request = self._client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("forwarding %s %s to the leader %s failed: %r", scope["method"], scope["path"], base_url, exc)
            await unavailable(send, f"the leading gateway at {base_url} did not answer ({type(exc).__name__}); retry")
            return
        try:
            await stream_until_gone(response, send, receive)
        except httpx.HTTPError as exc:
            log.warning("the leader's answer to %s %s broke off: %r", scope["method"], scope["path"], exc)
        finally:
            await response.aclose()
