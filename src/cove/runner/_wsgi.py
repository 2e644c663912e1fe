"""A WSGI app (PEP 3333) served as an ASGI one: each request on a thread of a pool.

WSGI is blocking, so a request runs on one of ``threads`` threads (the
deployment's ``concurrent_requests``: the gateway never sends more at once)
while the event loop goes on serving others. The body is read whole before
the app runs (``wsgi.input`` is a file), bounded by the runner's body limit;
the answer is streamed: each item the app's iterable yields is sent before
the next is asked for, so a generator's output reaches the caller as it
comes. WSGI has no lifespan and no WebSockets: startup and shutdown complete
at once, and a WebSocket is refused with 403.
"""

from __future__ import annotations

import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Send = Callable[[dict[str, Any]], Any]


class WsgiAdapter:
    """The ASGI app that runs ``wsgi_app``."""

    def __init__(self, wsgi_app: Callable[..., Any], threads: int) -> None:
        self._app = wsgi_app
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="cove-wsgi")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    self._pool.shutdown(wait=False)
                    return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        body = await _read_body(receive)
        if body is None:
            return  # the caller left before the body was in
        loop = asyncio.get_running_loop()
        environ = _environ(scope, body)
        await loop.run_in_executor(self._pool, self._run, environ, lambda m: _send_from_thread(loop, send, m))

    def _run(self, environ: dict[str, Any], push: Callable[[dict[str, Any]], None]) -> None:
        """Call the app on this thread; ``push`` hands each ASGI message to the loop and waits for it."""
        head: list[Any] = []  # [status, headers] once start_response was called
        sent = [False]

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and sent[0]:
                raise exc_info[1].with_traceback(exc_info[2])
            head[:] = [status, headers]
            return write

        def send_head() -> None:
            if not sent[0]:
                if not head:
                    raise RuntimeError("the WSGI app did not call start_response")
                status, headers = head
                encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
                push({"type": "http.response.start", "status": int(status.split(" ", 1)[0]), "headers": encoded})
                sent[0] = True

        def write(data: bytes) -> None:
            send_head()
            if data:
                push({"type": "http.response.body", "body": bytes(data), "more_body": True})

        result = self._app(environ, start_response)
        try:
            for data in result:
                write(data)
            send_head()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        push({"type": "http.response.body", "body": b"", "more_body": False})


def _send_from_thread(loop: asyncio.AbstractEventLoop, send: Send, message: dict[str, Any]) -> None:
    asyncio.run_coroutine_threadsafe(send(message), loop).result()


async def _read_body(receive: Any) -> bytes | None:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The WSGI environ of a request; strings are bytes read as latin-1, as PEP 3333 has them."""
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    host, port = "localhost", "80"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
            continue
        if key == "CONTENT_LENGTH":
            continue  # the body's own length, set above
        if key == "HOST":
            host, _, port = text.rpartition(":") if text.rpartition(":")[2].isdigit() else (text, "", port)
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    environ["SERVER_NAME"], environ["SERVER_PORT"] = host, port
    return environ
