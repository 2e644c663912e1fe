"""The gateway, reachable from the containers of a worker on another machine.

Containers have no network. Beside the gateway they reach it through its own
unix socket, bind-mounted into them; a worker on another host has no such
socket, so it serves one itself and forwards each request over HTTP to the
gateway URL it uses. The relay adds no authority of its own: it passes the
container's ``Authorization`` header (the token the gateway minted for that
container) through untouched and never adds the worker's token, so a request
without a token reaches the gateway without one and gets its 401. It listens
only on that socket, whose private parent folder keeps other host users out;
inside a container the socket is the only thing in its mounted folder.

Bodies stream both ways (large blobs are never held in memory), upstream
connections are kept alive in a pool, and a request larger than the largest
body the gateway accepts is refused here with 413 before it crosses the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cove._net.gateway_socket import SOCKET_NAME, UNIX_PATH_MAX
from cove._net.proxy import request_headers, stream_response, upstream_url
from cove._wire.limits import MAX_BLOB_BYTES, MAX_BODY_BYTES, MAX_CODE_BYTES

log = logging.getLogger("cove.worker")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _largest_gateway_body() -> int:
    """The largest body any gateway route accepts (a blob of the blob store); routes check their own limits."""
    return max(MAX_BODY_BYTES, MAX_CODE_BYTES, MAX_BLOB_BYTES)


@dataclasses.dataclass(frozen=True)
class RelaySettings:
    """How the relay reaches the gateway; ``max_body_bytes`` is the largest request it forwards."""

    gateway_url: str
    max_body_bytes: int = dataclasses.field(default_factory=_largest_gateway_body)
    connect_timeout: float = 10.0
    max_connections: int = 256
    max_keepalive: int = 32


def relay_socket_path(worker_root: Path) -> Path:
    """Where the relay listens: ``<private 0700 folder>/gateway/gateway.sock`` under the worker's run dir.

    The ``gateway`` folder is what containers get mounted, so it holds nothing
    but the socket. When that path is too long for a unix socket, the private
    folder moves under the temp folder, named after the worker's root.
    """
    preferred = worker_root / "run" / "relay" / "gateway" / SOCKET_NAME
    if len(os.fsencode(preferred)) <= UNIX_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(worker_root)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cove-relay-{digest}" / "gateway" / SOCKET_NAME


def _prepare_folders(path: Path) -> None:
    """Private parent (root only), a traversable socket folder, and no stale socket."""
    private = path.parent.parent
    private.mkdir(parents=True, exist_ok=True)
    private.chmod(0o700)
    path.parent.mkdir(exist_ok=True)
    path.parent.chmod(0o711)  # the containers' mapped uids reach the socket inside the mount, list nothing
    path.unlink(missing_ok=True)


class _TooLarge(Exception):
    """The request body passed the limit while streaming in."""


class _Gone(Exception):
    """The container hung up before its request was sent."""


def _error(status: int, kind: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"type": kind, "message": message}}).encode()


class RelayApp:
    """A plain ASGI app forwarding every HTTP request to the gateway, streaming both ways."""

    def __init__(self, settings: RelaySettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.base = settings.gateway_url.rstrip("/")
        self.client = httpx.AsyncClient(
            # No default headers: the worker's token must never ride along.
            timeout=httpx.Timeout(None, connect=settings.connect_timeout),  # long polls wait as long as callers do
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_keepalive
            ),
            follow_redirects=False,
            trust_env=False,  # a proxy configured for the worker host is not the containers' business
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not part of the gateway's API
        try:
            await self._forward(scope, receive, send)
        except _TooLarge:
            await self._reply(send, *_error(413, "PayloadTooLarge", self._too_large()))
        except _Gone:
            pass  # nobody is left to answer

    def _too_large(self) -> str:
        return f"the request body exceeds the gateway's limit of {self.settings.max_body_bytes} bytes"

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        declared = next((v for k, v in headers if k.lower() == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            raise _TooLarge
        body_done = asyncio.Event()
        has_body = declared not in (None, b"0") or any(k.lower() == b"transfer-encoding" for k, _ in scope["headers"])

        async def body() -> AsyncIterator[bytes]:
            seen = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Gone
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.settings.max_body_bytes:
                    raise _TooLarge
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    break
            body_done.set()

        if not has_body:
            body_done.set()
        request = self.client.build_request(
            scope["method"], upstream_url(self.base, scope), headers=headers, content=body() if has_body else None
        )
        forward = asyncio.ensure_future(self._exchange(request, send))
        watch = asyncio.ensure_future(self._disconnected(receive, body_done))
        try:
            await asyncio.wait({forward, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not forward.done():
                forward.cancel()  # the container hung up: so does the upstream request
            with contextlib.suppress(asyncio.CancelledError):
                await forward
        if not forward.cancelled():
            forward.result()

    @staticmethod
    async def _disconnected(receive: Receive, body_done: asyncio.Event) -> None:
        await body_done.wait()
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _exchange(self, request: httpx.Request, send: Send) -> None:
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("relay: the gateway is unreachable", extra={"error": repr(exc)})
            await self._reply(send, *_error(502, "GatewayUnreachable", f"the worker cannot reach the gateway: {exc}"))
            return
        try:
            await stream_response(response, send)
        except httpx.HTTPError as exc:  # the answer broke off: the container sees its body end early
            log.warning("relay: the gateway's answer broke off", extra={"error": repr(exc)})
        finally:
            await response.aclose()


class _RelayServer(uvicorn.Server):
    """Serves inside the worker's loop; the worker owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class Relay:
    """The running relay: a uvicorn server on the socket plus its upstream pool."""

    def __init__(self, settings: RelaySettings, path: Path) -> None:
        self.settings = settings
        self.path = path
        self.app = RelayApp(settings)
        self._server: _RelayServer | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _prepare_folders(self.path)
        config = uvicorn.Config(
            self.app,
            uds=str(self.path),  # uvicorn makes it 0666; the folders above decide who reaches it
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
        )
        self._server = server = _RelayServer(config)
        self._serving = serving = asyncio.ensure_future(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError(f"the gateway relay could not listen on {self.path}")
            await asyncio.sleep(0.01)
        log.info("gateway relay listening", extra={"path": str(self.path), "gateway": self.settings.gateway_url})

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._serving), timeout=8)
        await self.app.aclose()
        self.path.unlink(missing_ok=True)
