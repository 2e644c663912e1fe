"""Serving a web app (``@asgi``, ``@wsgi``) in its container: a small HTTP/1.1 and WebSocket server in asyncio.

Why a server of our own rather than uvicorn or hypercorn in the image: the
runner runs inside the user's image, where only the user's packages exist,
and Cove is air-gapped, so a server package would have to be added to every
web app's image from the reservoir and pinned against whatever the user's
app needs, and a version mismatch would break deploys that have nothing to
do with it. The one peer is the gateway, which already speaks HTTP/1.1 and
WebSockets to the caller; what this hop needs (keep-alive, streamed bodies
both ways, chunked framing, RFC 6455 frames) fits in a few hundred lines of
the standard library, with the same bounds as the endpoint server.

The order of a container's life: ``on_start``, the factory (the decorated
function; an ``async def`` is awaited), the app's lifespan startup, then the
container reports ready; requests that came meanwhile wait in the listening
socket's backlog. On SIGTERM it stops accepting, closes idle connections,
waits up to the drain time for requests and WebSockets in flight, then runs
the lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import types

from cove.runner._asgi_http import HttpExchange, plain_response
from cove.runner._asgi_request import read_head, scope_of
from cove.runner._asgi_ws import WebSocketSession, handshake_problem
from cove.runner._conn_input import ConnInput
from cove.runner._http import HttpError
from cove.runner._lifespan import Lifespan, LifespanFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

EXIT_USER_CODE = 3  # as ``_main``: the user's code failed before the container could serve


class _Server:
    """The connections of one container, and what it takes to drain them."""

    def __init__(self, app: Any, max_body: int, state: dict[str, Any]) -> None:
        self.app = app
        self.max_body = max_body
        self.state = state
        self.stopping = False
        self.busy = 0
        self.idle: set[asyncio.StreamWriter] = set()
        self.drained = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        client = tuple(peer[:2]) if isinstance(peer, tuple) else None
        conn = ConnInput(reader)
        try:
            while not self.stopping and await self._one(conn, writer, client):
                pass
        except (OSError, EOFError):
            pass  # the peer went away (``ClientDisconnected`` is an OSError): nobody to answer
        finally:
            writer.close()

    async def _one(self, conn: ConnInput, writer: asyncio.StreamWriter, client: Any) -> bool:
        """Serve one request (or a WebSocket, which takes the connection); whether another may follow."""
        self.idle.add(writer)
        try:
            head = await read_head(conn)
        except HttpError as exc:
            writer.write(plain_response(exc.status, exc.message))
            return False
        finally:
            self.idle.discard(writer)
        if head is None:
            return False
        self.busy += 1
        try:
            if head.websocket:
                problem = handshake_problem(head)
                if problem is not None:
                    writer.write(plain_response(400, problem))
                    return False
                scope = scope_of(head, "websocket", client, self.state)
                await WebSocketSession(conn, writer, head, scope, self.max_body).run(self.app)
                return False
            scope = scope_of(head, "http", client, self.state)
            return await HttpExchange(conn, writer, head, scope).run(self.app, self.max_body)
        finally:
            self.busy -= 1
            if self.stopping and not self.busy:
                self.drained.set()

    async def drain(self, grace: float) -> bool:
        """Close idle connections and wait up to ``grace`` s for the rest; whether all ended."""
        self.stopping = True
        for writer in list(self.idle):
            writer.close()
        if not self.busy:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), grace)
        return not self.busy


def serve(
    factory: Callable[[], Any],
    wrap: Callable[[Any], Any],
    on_start: Callable[[], Any] | None,
    listener: socket.socket,
    ready_fd: int | None,
    max_body: int,
    drain_seconds: float,
) -> int:
    """Build the app (``wrap`` adapts what the factory returns), serve it until SIGTERM; the exit code."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_run(factory, wrap, on_start, listener, ready_fd, max_body, drain_seconds))
    finally:
        loop.close()


async def _run(
    factory: Callable[[], Any],
    wrap: Callable[[Any], Any],
    on_start: Callable[[], Any] | None,
    listener: socket.socket,
    ready_fd: int | None,
    max_body: int,
    drain_seconds: float,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        app = await _build(factory, wrap, on_start)
        lifespan = Lifespan(app)
        await lifespan.startup()
    except LifespanFailed as exc:
        print(f"cove runner: the app's lifespan startup failed: {exc}", file=sys.stderr)
        return EXIT_USER_CODE
    except Exception as exc:
        import traceback

        sys.stderr.write("cove runner: building the web app failed:\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        return EXIT_USER_CODE
    server = _Server(app, max_body, lifespan.state)
    if listener.family == socket.AF_UNIX:
        listening = await asyncio.start_unix_server(server.handle, sock=listener)
    else:
        listening = await asyncio.start_server(server.handle, sock=listener)
    _report_ready(ready_fd)
    await stop.wait()
    listening.close()
    drained = await server.drain(drain_seconds)
    if not drained:
        print(f"cove runner: requests still running after {drain_seconds:g}s; exiting anyway", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    await lifespan.shutdown()
    return 0


async def _build(factory: Callable[[], Any], wrap: Callable[[Any], Any], on_start: Callable[[], Any] | None) -> Any:
    """``on_start``, then the factory, each awaited when it is a coroutine; the app, adapted by ``wrap``."""
    if on_start is not None:
        value = on_start()
        if type(value) is types.CoroutineType:
            await value
    app = factory()
    if type(app) is types.CoroutineType:
        app = await app
    if not callable(app):
        raise TypeError(f"the decorated function returned {type(app).__name__}, not a web app")
    return wrap(app)


def _report_ready(ready_fd: int | None) -> None:
    if ready_fd is None:
        return
    with contextlib.suppress(OSError):  # the worker stopped listening for it; serving still works
        os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
