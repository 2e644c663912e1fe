"""Large arguments and results: read and write the gateway's blob store from inside a container.

The container reaches the gateway only through ``COVE_GATEWAY`` (a unix
socket mounted into it, or a URL for the process engine) with the
workspace token in ``COVE_TOKEN``. Stdlib ``http.client`` is enough and is
imported only when a call carries a large payload.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from urllib.parse import urlsplit


class BlobError(OSError):
    """The blob store could not be reached or refused the request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("cove")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def _connection() -> http.client.HTTPConnection:
    address = os.environ.get("COVE_GATEWAY", "")
    if address.startswith("unix:"):
        return _UnixConnection(address[len("unix:") :])
    parts = urlsplit(address)
    if parts.scheme == "http" and parts.hostname:
        return http.client.HTTPConnection(parts.hostname, parts.port or 80)
    if parts.scheme == "https" and parts.hostname:
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443)
    raise BlobError("this container has no gateway address (COVE_GATEWAY) for the blob store")


def _request(method: str, path: str, body: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/octet-stream"}
    token = os.environ.get("COVE_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = _connection()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    except OSError as exc:
        raise BlobError(f"blob store unreachable: {exc}") from None
    finally:
        connection.close()
    if response.status >= 400:
        try:
            message = json.loads(data)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = data[:300].decode("utf-8", "replace")
        raise BlobError(f"blob store answered {response.status}: {message}")
    return data


def fetch(sha256: str) -> bytes:
    """The blob's bytes, checked against its name."""
    data = _request("GET", f"/api/v1/blobs/{sha256}")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobError(f"blob {sha256} arrived with different content")
    return data


def store(data: bytes) -> str:
    """Store ``data``; return its sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    _request("PUT", f"/api/v1/blobs/{sha256}", data)
    return sha256
