"""Streamed answers: a generator's items relayed from the container to the caller as they come.

Two routes stream: ``POST /endpoint/{name}`` when the handler is a generator
(chunked text, JSON lines or server-sent events, see ``cove.runner._stream``)
and ``POST /api/v1/functions/{name}/stream`` (``f.remote_gen``: pickled items
in ``cove._wire.stream`` records). Both are live calls on the endpoint path:
a container slot is leased as for an endpoint call and held until the last
item, the deployment's ``timeout`` bounds the whole stream, and nothing is
stored (a streamed call is neither durable nor retried).

Nothing is buffered here beyond one read: the next piece is read from the
container only once the caller's connection took the previous one (the
server's ``send`` waits while its transport is full), so a slow reader holds
the generator back through every socket on the way. A caller that hangs up
closes the connection to the container, whose runner then closes the
generator. When the stream must end early (the timeout, a container that
broke off), a format that can say so in band gets a last error (an
``event: error`` event, an ``ERROR`` record) if the body sits between two
items; otherwise the body ends without its last chunk, which every HTTP
client reports as an incomplete answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._wire import stream as wire
from .._wire.defaults import stored
from ..scheduler import DeploymentStopped, Lease, StartFailed
from ..store import Deployment, random_hex
from ._errors import ApiError
from ._follower_slots import ForwardToLeader
from ._upstream import UpstreamError, UpstreamStream

if TYPE_CHECKING:
    from ._invoke import Leases

# (the lease, how its relay failed) -> whether the call never reached a handler (``FollowerSlots.never_reached``)
NeverReached = Callable[[Lease, UpstreamError], Awaitable[bool]]

log = logging.getLogger("cove.gateway.streams")

SSE = wire.SSE.encode()
NDJSON = wire.NDJSON.encode()


def stream_accept(headers: dict[bytes, bytes]) -> bytes:
    """The stream format an endpoint caller asks for, as the runner reads it (none: its default)."""
    accept = headers.get(b"accept", b"").lower()
    if SSE in accept:
        return SSE
    if NDJSON in accept:
        return NDJSON
    return b""


def stream_headers(content_type: str) -> list[tuple[bytes, bytes]]:
    """The head of a streamed answer: its content type, and no caching or buffering by proxies on the way."""
    return [
        (b"content-type", content_type.encode("latin-1")),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]


async def relay(
    stream: UpstreamStream,
    release: Callable[[], None],
    deadline: float | None,
    receive: Any,
    send: Any,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send the stream on until it ends, the caller leaves or ``deadline`` (loop time) passes; then ``release``."""
    loop = asyncio.get_running_loop()
    try:
        await send(
            {"type": "http.response.start", "status": 200, "headers": stream_headers(stream.content_type) + headers}
        )
    except BaseException:
        stream.close()
        release()
        raise
    pump = asyncio.ensure_future(_pump(stream, send))
    watch = asyncio.ensure_future(_caller_left(receive))
    timed_out = False
    try:
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait({pump, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        timed_out = not done
    finally:
        watch.cancel()
        pump.cancel()  # a no-op once it is done
        await asyncio.wait({pump})  # its outcome is read below
        stream.close()  # a no-op after the last chunk; otherwise the runner closes the generator
        release()
    if pump.cancelled():
        if timed_out:
            await _end_early(stream, send, "Timeout", "the stream ran past the deployment's timeout")
        return  # the caller left: nobody to tell
    failure = pump.exception()
    if isinstance(failure, UpstreamError):
        log.warning("a stream from %s broke off: %s", stream.address, failure)
        await _end_early(stream, send, "ContainerFailed", f"the container's stream broke off: {failure}")
    elif failure is not None:
        raise failure


async def _pump(stream: UpstreamStream, send: Any) -> None:
    while True:
        piece = await stream.read()
        if not piece:
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "body": piece, "more_body": True})


async def _caller_left(receive: Any) -> None:
    """Return once the caller is gone (the request's body was read before the answer began)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _end_early(stream: UpstreamStream, send: Any, kind: str, message: str) -> None:
    """Say why the stream ends, where its format can; else leave the body without its last chunk."""
    if not stream.at_boundary:
        return
    error = json.dumps({"error": {"type": kind, "message": message}})
    media = stream.content_type.split(";", 1)[0].strip()
    if media == wire.SSE:
        last = f"event: error\ndata: {error}\n\n".encode()
    elif media == wire.RECORDS:
        last = wire.record(wire.ERROR, error.encode())
    else:
        return
    await send({"type": "http.response.body", "body": last})


async def open_stream(
    slots: Leases,
    deployment: Deployment,
    post: Callable[[str, str], Any],
    parameters: dict[str, Any] | None = None,
    never_reached: NeverReached | None = None,
) -> tuple[UpstreamStream, Lease, float | None]:
    """Lease a container of ``deployment`` from ``slots`` and start the call with ``post(address, call_id)``.

    ``slots`` is the leader's scheduler or a follower's mirror of ready
    containers (``FollowerSlots``, which raises ``ForwardToLeader`` when it
    cannot serve the call). Returns the stream with the lease it holds
    (release it with ``slots`` when the stream ends) and the loop time its
    timeout ends at; a container that answered without streaming (an error)
    is an ``ApiError`` with its status and body. A relay that failed is handed
    on (``ForwardToLeader``) when ``never_reached`` says no handler saw it.
    """
    timeout = float(stored(deployment.config, deployment.kind, "timeout"))
    loop = asyncio.get_running_loop()
    deadline = None if timeout < 0 else loop.time() + timeout
    call_id = "call-" + random_hex(8)
    try:
        async with asyncio.timeout_at(deadline):
            lease = await slots.acquire(deployment, parameters)
            try:
                status, payload = await post(lease.address, call_id)
            except UpstreamError as exc:
                slots.release(lease, served=False)
                if never_reached is not None and await never_reached(lease, exc):
                    raise ForwardToLeader from None
                reason = await lease.slot.exit_reason()
                raise ApiError(502, f"container {lease.container_id} failed: {reason or exc}") from None
            except BaseException:
                slots.release(lease, served=False)
                raise
    except TimeoutError:
        raise ApiError(504, f"no answer within the deployment's timeout of {timeout:g} s") from None
    except (StartFailed, DeploymentStopped) as exc:
        raise ApiError(503, str(exc)) from None
    if isinstance(payload, UpstreamStream):
        return payload, lease, deadline
    slots.release(lease)
    raise _answered(status, payload)


def _answered(status: int, payload: bytes) -> ApiError:
    """A container's plain (error) answer to a streamed call, as the error it reports."""
    try:
        error = json.loads(payload)["error"]
        return ApiError(status if status >= 400 else 502, str(error["message"]), str(error["type"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(502, f"the container answered {status} instead of a stream")
