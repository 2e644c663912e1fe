"""Requests from inside a container to its gateway, with the stdlib only.

The container reaches the gateway only through ``COVE_GATEWAY`` (a unix
socket mounted into it, or a URL for the process engine) with the
workspace token in ``COVE_TOKEN``. Imported only when a call needs it (a
large payload, or output to post while a long call runs).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import urlsplit


class GatewayError(OSError):
    """The gateway could not be reached or refused the request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("cove", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def reachable() -> bool:
    """Whether this container was given a gateway address at all."""
    return bool(os.environ.get("COVE_GATEWAY"))


def _connection(timeout: float | None) -> http.client.HTTPConnection:
    address = os.environ.get("COVE_GATEWAY", "")
    if address.startswith("unix:"):
        return _UnixConnection(address[len("unix:") :], timeout)
    parts = urlsplit(address)
    if parts.scheme == "http" and parts.hostname:
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    if parts.scheme == "https" and parts.hostname:
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout)
    raise GatewayError("this container has no gateway address (COVE_GATEWAY)")


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/octet-stream",
    timeout: float | None = None,
) -> bytes:
    """Send one request as this container's workspace; the answer's body, or ``GatewayError``."""
    headers = {"Content-Type": content_type}
    token = os.environ.get("COVE_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = _connection(timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    except OSError as exc:
        raise GatewayError(f"gateway unreachable: {exc}") from None
    finally:
        connection.close()
    if response.status >= 400:
        try:
            message = json.loads(data)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = data[:300].decode("utf-8", "replace")
        raise GatewayError(f"gateway answered {response.status}: {message}")
    return data
