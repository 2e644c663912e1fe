"""uvicorn's httptools protocol, with the gateway's invocation path served outside the ASGI cycle.

Two changes to uvicorn's ``HttpToolsProtocol``:

- Each response's head waits for its first body write, or for the end of the
  current event loop turn, whichever comes first (``_HeadHoldingTransport``):
  uvicorn writes the status line and headers as soon as the app sends
  ``http.response.start``, and the body in a second write; on the gateway's
  small answers that is two system calls and two packets per request.
- A ``POST /endpoint/...`` is handed to the app's ``serve_endpoint`` (when it
  has one) as a :class:`DirectExchange` instead of running the ASGI app: the
  handler reads the body uvicorn parsed and writes its whole answer in one
  write. uvicorn still parses, keeps the connection alive, queues pipelined
  requests and applies flow control; what is skipped is the middleware stack,
  the ASGI messages and their per-header checks, which were about a third of
  the gateway's CPU time per relayed request.

A kept-alive connection's idle timeout is not a timer per response, as in
uvicorn, but one sweep per server every ``KEEP_ALIVE_SWEEP`` seconds (or a
quarter of the timeout, if shorter) that closes the connections idle past it:
arming and cancelling a timer per request was a few percent of the gateway's
CPU per relayed request.

While the process drains (``_drain``), each request's response closes its
connection: uvicorn then adds ``Connection: close`` itself, and so does
:meth:`DirectExchange.answer`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ..gateway import ENDPOINT_PREFIX, SERVE_ENDPOINT
from ._drain import DRAINING

log = logging.getLogger("cove.gateway")
KEEP_ALIVE_SWEEP = 1.0  # seconds between looks for kept-alive connections idle past their timeout


class _HeadHoldingTransport:
    """A transport that holds a write ending in a blank line (a response head) until the next write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.writelines((held, data))  # one vectored write, no copy of the body
        elif data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:  # asked after every answer: spared ``__getattr__``
        return self._transport.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()  # an upgraded connection's protocol writes straight to the socket from now on
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DirectExchange:
    """One HTTP request served without ASGI: its scope, its body as ASGI messages, and a one-write answer.

    ``receive`` and ``send`` are uvicorn's own, for what does not fit one
    write (a streamed answer, a request handed to another gateway); a handler
    uses either ``send`` or :meth:`answer`, never both.
    """

    __slots__ = ("_cycle", "receive", "scope", "send")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self.scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        self.receive: Any = cycle.receive  # ASGI's receive and send: the gateway speaks them untyped
        self.send: Any = cycle.send

    async def answer(self, status: int, headers: bytes, body: bytes) -> None:
        """Write the whole answer: ``headers`` are complete header lines (CRLF-ended) other than the length.

        The caller vouches for them (names and values it made itself); uvicorn's
        ``Date`` and ``Server`` come first, and ``Connection: close`` when the
        connection ends after this answer.
        """
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        cycle.response_started = True
        parts = [STATUS_LINE[status]]
        for name, value in cycle.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(headers)
        parts.append(b"content-length: %d\r\n" % len(body))
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        cycle.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()


async def _serve_directly(handler: Callable[[DirectExchange], Awaitable[None]], cycle: RequestResponseCycle) -> None:
    """Run ``handler`` as uvicorn runs an ASGI app: an error it lets out is a 500, or a closed connection."""
    exchange = DirectExchange(cycle)
    try:
        await handler(exchange)
    except BaseException as exc:
        log.error("Exception serving %s", cycle.scope["path"], exc_info=exc)
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
    else:
        if not cycle.response_complete and not cycle.disconnected:
            log.error("the invocation path returned without completing its answer to %s", cycle.scope["path"])
            cycle.transport.close()
    finally:
        cycle.on_response = lambda: None


class _IdleSweep:
    """One server's keep-alive timeout: a look every ``interval`` at its connections, while it has any."""

    def __init__(self, state: ServerState, timeout: float) -> None:
        self._state = state
        self._timeout = timeout
        self._interval = min(KEEP_ALIVE_SWEEP, timeout / 4)
        self._loop = asyncio.get_running_loop()
        self.running = False

    def start(self) -> None:
        if not self.running:
            self.running = True
            self._loop.call_later(self._interval, self._sweep)

    def _sweep(self) -> None:
        now = self._loop.time()
        for connection in list(self._state.connections):
            if not isinstance(connection, GatewayHttpProtocol):  # a WebSocket's: no keep-alive timeout
                continue
            since = connection.idle_since  # None: a request is under way
            if since is not None and now - since >= self._timeout:
                connection.timeout_keep_alive_handler()
        self.running = False
        if self._state.connections:
            self.start()


_SWEEPS: weakref.WeakKeyDictionary[ServerState, _IdleSweep] = weakref.WeakKeyDictionary()


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing through ``_HeadHoldingTransport``, with ``POST /endpoint/`` served directly."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadHoldingTransport(transport))  # type: ignore[arg-type]
        self.serve_endpoint: Callable[[DirectExchange], Awaitable[None]] | None = getattr(
            self.config.app, SERVE_ENDPOINT, None
        )
        self.idle_since: float | None = None  # loop time of the last answer, while no request follows it
        sweep = _SWEEPS.get(self.server_state)
        if sweep is None:
            sweep = _SWEEPS[self.server_state] = _IdleSweep(self.server_state, self.timeout_keep_alive)
        sweep.start()

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None  # data came (or the connection ended): not idle

    def on_response_complete(self) -> None:
        """uvicorn's, with the connection marked idle for the sweep instead of a keep-alive timer armed."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_since = self.loop.time()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if DRAINING.active and self.cycle is not None:
            self.cycle.keep_alive = False

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        scope = cycle.scope
        if (
            self.serve_endpoint is None
            or app is not self.app  # over uvicorn's concurrency limit: its 503 app answers
            or scope["method"] != "POST"
            or not scope["path"].startswith(ENDPOINT_PREFIX)
        ):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(_serve_directly(self.serve_endpoint, cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
