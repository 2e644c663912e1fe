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
- Before that, once the request's whole body is here, the app's
  ``express_endpoint`` (when it has one) may take it without any task: it
  serves a warm invocation in callbacks (``cove.gateway._express``) or
  declines, having changed nothing, and the request goes to ``serve_endpoint``.
  A request that expects ``100 Continue``, or whose body grows past
  ``EXPRESS_MAX_BODY`` while it arrives, goes to ``serve_endpoint`` at once,
  which reads it as it comes.

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
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ..gateway import ENDPOINT_PREFIX, EXPRESS_ENDPOINT, SERVE_ENDPOINT
from ._drain import DRAINING

log = logging.getLogger("cove.gateway")
KEEP_ALIVE_SWEEP = 1.0  # seconds between looks for kept-alive connections idle past their timeout
EXPRESS_MAX_BODY = 64 * 1024  # bytes: a larger body is read as it comes (uvicorn pauses reading past this much)
Handler = Callable[["DirectExchange"], Awaitable[None]]


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
    uses either ``send`` or :meth:`answer`, never both. An express handler
    (which runs in no task) reads the body with :meth:`body`, takes it with
    :meth:`drop_body` once it serves the request, answers with
    :meth:`answer_now`, and hands what needs awaiting to :meth:`serve_in_task`.
    """

    __slots__ = ("_cycle", "_spawn", "receive", "scope", "send")

    def __init__(self, cycle: RequestResponseCycle, spawn: Callable[[Handler, RequestResponseCycle], None]) -> None:
        self._cycle = cycle
        self._spawn = spawn
        self.scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        self.receive: Any = cycle.receive  # ASGI's receive and send: the gateway speaks them untyped
        self.send: Any = cycle.send

    def body_size(self) -> int:
        """How many bytes of the body are here (all of it, for an express handler)."""
        return len(self._cycle.body)

    def body(self) -> bytes:
        """The body that is here (all of it, for an express handler), left for ``receive`` to read too."""
        return bytes(self._cycle.body)

    def drop_body(self) -> None:
        """Take the body as ``receive`` would have: its next call waits for the client to leave."""
        cycle = self._cycle
        cycle.body = bytearray()
        cycle.message_event.clear()

    def serve_in_task(self, handler: Handler) -> None:
        """Finish this request in a task running ``handler``, as ``serve_endpoint`` would run (errors: a 500)."""
        self._spawn(handler, self._cycle)

    async def answer(self, status: int, headers: bytes, body: bytes) -> None:
        """Write the whole answer: ``headers`` are complete header lines (CRLF-ended) other than the length.

        The caller vouches for them (names and values it made itself); uvicorn's
        ``Date`` and ``Server`` come first, and ``Connection: close`` when the
        connection ends after this answer.
        """
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        self._write(status, headers, body)

    def answer_now(self, status: int, headers: bytes, body: bytes) -> bool:
        """:meth:`answer` without waiting: False (nothing written) while the client reads too slowly to take it."""
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            return False
        self._write(status, headers, body)
        cycle.on_response = _answered  # as a task's end does: the next request may start already
        return True

    def _write(self, status: int, headers: bytes, body: bytes) -> None:
        cycle = self._cycle
        if cycle.disconnected:
            return
        cycle.response_started = True
        parts = [STATUS_LINE[status], _default_head(cycle.default_headers), headers]
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


_DEFAULT_HEAD: list[Any] = [None, b""]  # the server's default headers (a list uvicorn remakes each second), joined


def _default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's ``Date`` and ``Server`` lines, joined once per list instead of once per answer."""
    if _DEFAULT_HEAD[0] is not headers:
        _DEFAULT_HEAD[1] = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        _DEFAULT_HEAD[0] = headers
    joined: bytes = _DEFAULT_HEAD[1]
    return joined


def _answered() -> None:
    """A cycle's ``on_response`` once its answer was written: nothing more to start."""


async def _serve_directly(exchange: DirectExchange, handler: Handler, cycle: RequestResponseCycle) -> None:
    """Run ``handler`` as uvicorn runs an ASGI app: an error it lets out is a 500, or a closed connection."""
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
        cycle.on_response = _answered


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
    """``HttpToolsProtocol`` writing through ``_HeadHoldingTransport``, with ``POST /endpoint/`` served directly.

    A connection the native front handed over (``_front``) starts with the bytes the front read
    (``front_prefix``), and goes back to it (``give_back``) when it is idle after an endpoint call's answer.
    """

    front_prefix = b""
    give_back: Callable[[int], bool] | None = None
    mid_message = False  # the parser holds part of a request
    last_endpoint = False  # the last request was an endpoint call (the front may serve the next one)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadHoldingTransport(transport))  # type: ignore[arg-type]
        app = self.config.app
        self.serve_endpoint: Handler | None = getattr(app, SERVE_ENDPOINT, None)
        self.express: Callable[[DirectExchange], bool] | None = getattr(app, EXPRESS_ENDPOINT, None)
        self.awaiting_body: RequestResponseCycle | None = None  # an express candidate whose body is still coming
        self.idle_since: float | None = None  # loop time of the last answer, while no request follows it
        sweep = _SWEEPS.get(self.server_state)
        if sweep is None:
            sweep = _SWEEPS[self.server_state] = _IdleSweep(self.server_state, self.timeout_keep_alive)
        sweep.start()
        if self.front_prefix:
            prefix, self.front_prefix = self.front_prefix, b""
            self.data_received(prefix)

    def on_message_begin(self) -> None:
        self.mid_message = True
        super().on_message_begin()

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
            if self.give_back is not None and self.last_endpoint and not self.mid_message:
                self.loop.call_soon(self._back_to_front)

    def _back_to_front(self) -> None:
        """Give the connection back to the native front: idle, nothing of a next request read or left to write."""
        holding = self.transport
        raw: asyncio.Transport = holding._transport  # type: ignore[attr-defined]
        if (
            self.idle_since is None
            or self.mid_message
            or self.pipeline
            or raw.is_closing()
            or holding._held is not None  # type: ignore[attr-defined]
            or raw.get_write_buffer_size()
            or self.give_back is None
        ):
            return
        sock = raw.get_extra_info("socket")
        if sock is None:
            return
        raw.pause_reading()
        fd = os.dup(sock.fileno())
        try:
            given = self.give_back(fd)
        finally:
            os.close(fd)
        if given:
            raw.close()  # this end only: the connection lives on in the front
        else:
            raw.resume_reading()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if DRAINING.active and self.cycle is not None:
            self.cycle.keep_alive = False

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        scope = cycle.scope
        serve = self.serve_endpoint
        self.last_endpoint = scope["method"] == "POST" and scope["path"].startswith(ENDPOINT_PREFIX)
        if (
            serve is None
            or app is not self.app  # over uvicorn's concurrency limit: its 503 app answers
            or scope["method"] != "POST"
            or not scope["path"].startswith(ENDPOINT_PREFIX)
        ):
            super()._start_asgi_task(cycle, app)
        elif self.express is None or cycle.waiting_for_100_continue:
            self._spawn(serve, cycle)
        elif cycle.more_body:
            self.awaiting_body = cycle  # taken up when the body is whole (or too large to wait for)
        else:
            self._try_express(cycle, serve)

    def _try_express(self, cycle: RequestResponseCycle, serve: Handler) -> None:
        exchange = DirectExchange(cycle, self._spawn)
        try:
            taken = self.express(exchange)  # type: ignore[misc]  # only called while there is one
        except Exception:  # before it took the request (after, it answers its own errors)
            log.exception("the express lane failed on %s; the invocation path serves it", cycle.scope["path"])
            taken = False
        if not taken:
            self._spawn(serve, cycle, exchange)

    def _spawn(self, handler: Handler, cycle: RequestResponseCycle, exchange: DirectExchange | None = None) -> None:
        task = self.loop.create_task(_serve_directly(exchange or DirectExchange(cycle, self._spawn), handler, cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        waiting = self.awaiting_body
        if waiting is not None and len(waiting.body) > EXPRESS_MAX_BODY:
            self.awaiting_body = None
            self._spawn(self.serve_endpoint, waiting)  # type: ignore[arg-type]  # it reads the rest as it comes

    def on_message_complete(self) -> None:
        self.mid_message = False
        super().on_message_complete()
        waiting = self.awaiting_body
        if waiting is not None:
            self.awaiting_body = None
            self._try_express(waiting, self.serve_endpoint)  # type: ignore[arg-type]
