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
from urllib.parse import urlsplit

_DEAD = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


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
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._drop(conn)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if not readable:
                return conn, True
            self._drop(conn)  # closed by the gateway while idle (or sent something unasked)
        conn = http.client.HTTPConnection(self.host, self.port)
        conn.connect()
        self._local.conn = conn
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
