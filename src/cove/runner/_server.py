"""Accepting connections and serving requests on them.

A thread per connection keeps the code plain and the hot path short: the
thread that read a request calls the user's function itself, so a warm call
costs one read, one call and one write. The concurrency limit is a semaphore
shared by all connections, because the gateway may open more connections
than the deployment's ``concurrent_requests``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time

from cove.runner import _tracing
from cove.runner._app import BatchCaller, UserFunction
from cove.runner._capture import end_request
from cove.runner._http import HttpError, Request, error_payload, read_request, response
from cove.runner._request_ids import REQUEST_ID

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_HEALTH = b'{"status":"ok"}'
_POST = b"POST"
_INVOKE = b"/invoke"
_CALL = b"/call"
_STREAM = b"/stream"
_HEALTH_PATH = b"/health"


class Server:
    """Serves ``/invoke``, ``/call``, ``/stream`` and ``/health`` until :meth:`stop` is called.

    A generator handler's items are written by the connection's thread as they
    come (``_stream``), which keeps its place under the concurrency limit.
    """

    def __init__(self, listener: socket.socket, app: UserFunction, concurrency: int, max_body: int) -> None:
        self.listener = listener
        self.app = app
        self.batch = BatchCaller(app)
        self.max_body = max_body
        # A plain lock is cheaper than a semaphore and is what concurrency 1 needs.
        self.gate: threading.Lock | threading.Semaphore = (
            threading.Lock() if concurrency <= 1 else threading.BoundedSemaphore(concurrency)
        )
        self._tcp = listener.family in (socket.AF_INET, socket.AF_INET6)
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._idle: set[socket.socket] = set()
        self._active = 0
        self.stopping = False

    def serve_forever(self) -> None:
        """Accept until stopped; the caller's signal handler ends it by raising."""
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError as exc:
                if self.stopping:
                    return
                print(f"cove: accept failed: {exc}", file=sys.stderr)
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            try:
                threading.Thread(target=self._serve, args=(conn,), name="cove-conn", daemon=True).start()
            except BaseException:
                conn.close()
                raise

    def stop(self, grace: float) -> bool:
        """Stop accepting, close idle connections, wait up to ``grace`` s for calls in flight.

        Returns whether every call finished in time.
        """
        with self._lock:
            self.stopping = True
            idle = list(self._idle)
        with contextlib.suppress(OSError):
            self.listener.close()
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)  # wakes the reader with EOF; it then closes
        deadline = time.monotonic() + grace
        with self._lock:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._drained.wait(left)
        return True

    def _serve(self, conn: socket.socket) -> None:
        if self._tcp:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = conn.makefile("rb")
        send = conn.sendall
        lock = self._lock
        try:
            while True:
                with lock:
                    if self.stopping:
                        return
                    self._idle.add(conn)
                try:
                    request = read_request(rfile, send, self.max_body)
                except HttpError as exc:
                    with lock:
                        self._idle.discard(conn)
                    send(response(exc.status, error_payload(exc.kind, exc.message), False))
                    return
                with lock:
                    self._idle.discard(conn)
                    if request is None:
                        return
                    self._active += 1
                try:
                    answer = self._dispatch(request, send)
                    if type(answer) is tuple:
                        keep_alive = request.keep_alive and not self.stopping
                        send(response(*answer, keep_alive))
                    else:  # a stream, answered as it ran
                        keep_alive = bool(answer)
                finally:
                    with lock:
                        self._active -= 1
                        if self.stopping and not self._active:
                            self._drained.notify_all()
                if not keep_alive:
                    return
        except OSError:
            return  # the peer went away; nothing to answer
        finally:
            with lock:
                self._idle.discard(conn)
            rfile.close()
            conn.close()

    def _dispatch(self, request: Request, send: Callable[[bytes], Any]) -> tuple[int, bytes] | bool:
        """The answer to send; or, for a generator's items, written here as they come, whether to keep the connection.

        A stream holds its place under the concurrency limit until its last item is sent.
        """
        method = request.method
        path = request.path
        if path == _INVOKE:
            if method != _POST:
                return 405, error_payload("MethodNotAllowed", "use POST /invoke")
            if request.request_id is not None:
                return self._invoke_as(request, send)
            with self.gate:
                status, payload = self.app.invoke(request.body, request.call_id, request.accept)
                if type(payload) is bytes:
                    return status, payload
                return payload.write(send, self._keep(request))  # type: ignore[union-attr]
        if path == _CALL:
            if method != _POST:
                return 405, error_payload("MethodNotAllowed", "use POST /call")
            with self.gate:
                return self.batch.call(request.body)
        if path == _STREAM:
            if method != _POST:
                return 405, error_payload("MethodNotAllowed", "use POST /stream")
            with self.gate:
                return self.app.stream(request.body, request.call_id).write(send, self._keep(request))
        if path == _HEALTH_PATH:
            if method != b"GET":
                return 405, error_payload("MethodNotAllowed", "use GET /health")
            return 200, _HEALTH
        return 404, error_payload("NotFound", f"no route {path.decode('latin-1')!r}; use POST /invoke")

    def _invoke_as(self, request: Request, send: Callable[[bytes], Any]) -> tuple[int, bytes] | bool:
        """``/invoke`` with the request's id set for what the handler prints and logs (this context only)."""
        rid = str(request.request_id)
        token = REQUEST_ID.set(rid)
        traced = _tracing.handler  # None unless the gateway traces and the image has OpenTelemetry
        begun = None if traced is None else traced.begin(request.traceparent, request.call_id)
        status = 500
        try:
            with self.gate:
                status, payload = self.app.invoke(request.body, request.call_id, request.accept)
                if type(payload) is bytes:
                    return status, payload
                return payload.write(send, self._keep(request))  # type: ignore[union-attr]
        finally:
            if begun is not None:
                traced.end(begun, status)  # type: ignore[union-attr]
            REQUEST_ID.reset(token)
            end_request(rid)

    def _keep(self, request: Request) -> bool:
        return request.keep_alive and not self.stopping
