"""The blob store: large call arguments and results travel by reference, checked by hash, per workspace."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from types import ModuleType

import pytest
from conftest import APPS, Server

BLOBBY = APPS / "blobby" / "app.py"
DEPLOYED = ("blob_reverse", "blob_digest", "blob_queue")
FIVE_MIB = 5 * 1024 * 1024


def _payload(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible bytes."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


@pytest.fixture(scope="module")
def blobby(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(BLOBBY, DEPLOYED, "blobby_app") as module:
        yield module


def _blob_files(server: Server) -> set[str]:
    root = server.home / "blobs" / "data"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_put_get_head_and_idempotent(server: Server) -> None:
    data = _payload(300_000, seed=1)
    sha = hashlib.sha256(data).hexdigest()
    with server.http() as http:
        assert http.head(f"/api/v1/blobs/{sha}").status_code == 404
        stored = http.put(f"/api/v1/blobs/{sha}", content=data)
        assert stored.status_code == 201, stored.text
        assert stored.json() == {"sha256": sha, "size": len(data), "stored": True}
        again = http.put(f"/api/v1/blobs/{sha}", content=data)
        assert again.status_code == 201 and again.json()["stored"] is False
        head = http.head(f"/api/v1/blobs/{sha}")
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
        assert http.get(f"/api/v1/blobs/{sha}").content == data


def test_tampered_hash_is_rejected_and_nothing_is_kept(server: Server) -> None:
    data = _payload(200_000, seed=2)
    claimed = hashlib.sha256(data + b"x").hexdigest()
    with server.http() as http:
        reply = http.put(f"/api/v1/blobs/{claimed}", content=data)
        assert reply.status_code == 400
        assert hashlib.sha256(data).hexdigest() in reply.json()["error"]["message"]
        assert http.head(f"/api/v1/blobs/{claimed}").status_code == 404
        bad_name = http.put("/api/v1/blobs/not-a-hash", content=b"x")
        assert bad_name.status_code == 400 and "sha256" in bad_name.json()["error"]["message"]
    assert not any(name.endswith(".part") for name in _blob_files(server))


def test_oversized_blob_gets_413_before_its_body_is_read(server: Server) -> None:
    sha = "0" * 64
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Length: {64 * 1024**3}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        reply = ""
        while "exceeds" not in reply:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk.decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "exceeds the limit" in reply


def test_blobs_are_per_workspace(server: Server) -> None:
    data = _payload(100_000, seed=3)
    sha = hashlib.sha256(data).hexdigest()
    with server.http() as http:
        assert http.put(f"/api/v1/blobs/{sha}", content=data).status_code == 201
        other = http.post("/api/v1/tokens", json={"name": "blobs", "workspace": "blob-other"}).json()["token"]
    with server.http(token=other) as http:
        assert http.get(f"/api/v1/blobs/{sha}").status_code == 404
        assert http.head(f"/api/v1/blobs/{sha}").status_code == 404


def test_large_argument_and_result_of_remote(blobby: ModuleType, server: Server) -> None:
    data = _payload(FIVE_MIB, seed=4)
    before = _blob_files(server)
    assert blobby.blob_reverse.remote(data) == data[::-1]
    new = _blob_files(server) - before
    assert len(new) == 2  # the arguments and the result, each stored once by hash


def test_large_payloads_with_map_spawn_and_put(blobby: ModuleType) -> None:
    inputs = [_payload(2 * 1024 * 1024, seed=s) for s in (5, 6, 7)]
    assert list(blobby.blob_digest.map(inputs)) == [hashlib.sha256(d).hexdigest() for d in inputs]
    assert blobby.blob_reverse.spawn(inputs[0]).get(timeout=120) == inputs[0][::-1]
    assert blobby.blob_queue.put(inputs[1]).result(timeout=120) == len(inputs[1])


def test_small_payloads_stay_inline(blobby: ModuleType, server: Server) -> None:
    before = _blob_files(server)
    assert blobby.blob_reverse.remote(b"abc") == b"cba"
    assert _blob_files(server) == before
