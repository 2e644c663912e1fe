"""Large arguments and results: read and write the gateway's blob store from inside a container."""

from __future__ import annotations

import hashlib

from cove.runner._gateway_http import GatewayError, request


class BlobError(GatewayError):
    """The blob store could not be reached or refused the request."""


def _blob_request(method: str, path: str, body: bytes | None = None) -> bytes:
    try:
        return request(method, path, body)
    except GatewayError as exc:
        raise BlobError(f"blob store: {exc}") from None


def fetch(sha256: str) -> bytes:
    """The blob's bytes, checked against its name."""
    data = _blob_request("GET", f"/api/v1/blobs/{sha256}")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobError(f"blob {sha256} arrived with different content")
    return data


def store(data: bytes) -> str:
    """Store ``data``; return its sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    _blob_request("PUT", f"/api/v1/blobs/{sha256}", data)
    return sha256
