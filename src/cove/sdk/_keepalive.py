"""Lean kept-alive HTTP/1.1 requests to a plain-``http://`` gateway, for calls and their results.

A warm ``.remote`` is about a millisecond end to end; httpx's per-request
machinery (request and header models, the connection pool, event hooks) costs
about half of that again in the caller's CPU. This sends the same request on
one kept-alive ``http.client`` connection per thread (a connection is not
shared between threads) and hands back the status, headers and body.

A connection the gateway closed while it sat idle is noticed before reuse
(it reads as ready) and replaced; a request whose reused connection turns
out to be dead before any answer arrived is sent once more on a new one,
as HTTP clients do for kept-alive connections.
"""

from __future__ import annotations

import http.client
import select
import threading
import weakref
from urllib.parse import urlsplit

_DEAD = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _ThreadConnection:
    """A thread's connection, closed when the thread ends (its ``threading.local`` entry is dropped then).

    Without this, a connection of a thread that ended (``asyncio.to_thread``'s pool,
    ``.map``'s senders) would be left to the garbage collector, open.
    """

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        self.conn.close()


class KeptAlive:
    """Requests to one ``http://host:port`` gateway over a kept-alive connection per thread."""

    def __init__(self, gateway: str, headers: dict[str, str]) -> None:
        parts = urlsplit(gateway)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{gateway!r} is not a plain http:// gateway")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = headers
        self._local = threading.local()
        self._every: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()  # every thread's, for close()

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request and read the whole answer; no timeout, like the calls it serves."""
        sent = {**self.headers, **headers}
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request(method, self.prefix + path, body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
            except _DEAD:
                self._drop(conn)
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self._drop(conn)
                raise
            if response.will_close:
                self._drop(conn)
            return response.status, response.getheaders(), data
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection; a later request opens a new one."""
        for held in list(self._every):
            held.conn.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        held: _ThreadConnection | None = getattr(self._local, "held", None)
        if held is not None and held.conn.sock is not None:
            readable, _, _ = select.select([held.conn.sock], [], [], 0)
            if not readable:
                return held.conn, True
            self._drop(held.conn)  # closed by the gateway while idle (or sent something unasked)
        conn = http.client.HTTPConnection(self.host, self.port)
        conn.connect()
        self._local.held = held = _ThreadConnection(conn)
        self._every.add(held)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        held = getattr(self._local, "held", None)
        if held is not None and held.conn is conn:
            self._local.held = None
