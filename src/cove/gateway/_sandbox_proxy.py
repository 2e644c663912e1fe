"""Relaying one request from a client to a sandbox agent's socket, streamed both ways.

Sandbox traffic is long polls and file bodies, so nothing here is held in
gateway memory: the request body flows to the agent as it arrives, counted
against the gateway's body limit (413 the moment it passes, or at once when
the declared length is over it), and the agent's answer flows back chunk by
chunk (``cove._net.proxy``). Each request gets its own short-lived connection.
The agent sees only the method, path, body and its type: never the caller's
token or other headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
from starlette.responses import Response

from cove._net.proxy import stream_response

from ._errors import ApiError

# Read (long polls wait up to 30 s) and write timeouts of the hop to the agent, per socket operation.
AGENT_TIMEOUT = httpx.Timeout(90.0, connect=10.0)


class AgentError(ConnectionError):
    """The sandbox's agent could not be reached or answered nonsense."""


class _TooLarge(Exception):
    """The request body passed the limit while streaming in."""


def _agent_header(name: bytes) -> bool:
    """The agent's answer headers a client gets: the body's type and length, and the agent's own."""
    return name in (b"content-type", b"content-length") or name.startswith(b"x-cove-")


class RelayedResponse(Response):
    """An agent's answer, streamed to the client; ``done`` runs once it is sent or abandoned."""

    def __init__(self, upstream: httpx.Response, client: httpx.AsyncClient, done: Callable[[], None]) -> None:
        super().__init__(status_code=upstream.status_code)
        self._upstream = upstream
        self._client = client
        self._done = done

    async def __call__(
        self, scope: Any, receive: Any, send: Callable[[MutableMapping[str, Any]], Awaitable[None]]
    ) -> None:
        try:
            await stream_response(self._upstream, send, keep_header=_agent_header)
        except httpx.HTTPError:
            pass  # the agent broke off mid-answer: the client sees a truncated body and its length says so
        finally:
            await _close(self._upstream, self._client)
            self._done()


async def _close(upstream: httpx.Response | None, client: httpx.AsyncClient) -> None:
    with contextlib.suppress(Exception):
        if upstream is not None:
            await upstream.aclose()
        await client.aclose()


def check_declared_length(headers: Any, limit: int) -> int | None:
    """The declared body length; 413 when it is over ``limit``, before a byte of the body is read."""
    declared = headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise ApiError(400, f"Content-Length {declared!r} is not a number")
    if int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    return int(declared)


async def open_agent_request(
    address: str,
    method: str,
    target: str,
    body: AsyncIterator[bytes],
    *,
    length: int | None,
    content_type: str | None,
    limit: int,
    done: Callable[[], None],
) -> RelayedResponse:
    """Send ``body`` (at most ``limit`` bytes) to the agent at ``unix:PATH`` or ``tcp:HOST:PORT``; its answer.

    Without a declared ``length`` the body goes as chunked transfer coding.
    ``done`` runs exactly once: when the answer has been streamed, or here if
    no answer comes (413 past the limit, 502 when the agent fails).
    """
    if address.startswith("unix:"):
        transport, origin = httpx.AsyncHTTPTransport(uds=address[5:], verify=False), "http://sandbox"
    elif address.startswith("tcp:"):  # a worker on another host (``--advertise-host``)
        transport, origin = httpx.AsyncHTTPTransport(verify=False), "http://" + address[4:]
    else:
        done()
        raise AgentError(f"unsupported sandbox address {address!r}")
    client = httpx.AsyncClient(transport=transport, timeout=AGENT_TIMEOUT, trust_env=False)
    headers = {"content-length": str(length)} if length is not None else {}
    if content_type:
        headers["content-type"] = content_type
    request = client.build_request(method, origin + target, headers=headers, content=_counted(body, limit))
    try:
        upstream = await client.send(request, stream=True)
    except _TooLarge:
        await _close(None, client)
        done()
        raise ApiError(413, f"request body exceeds the limit of {limit} bytes") from None
    except (httpx.HTTPError, OSError) as exc:
        await _close(None, client)
        done()
        raise AgentError(f"the sandbox did not answer: {exc or type(exc).__name__}") from exc
    except BaseException:
        await _close(None, client)
        done()
        raise
    return RelayedResponse(upstream, client, done)


async def _counted(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if chunk:
            yield chunk
