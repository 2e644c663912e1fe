"""Requests a hostile tenant can send with an ordinary token: each gets a clear 4xx, never a 500 or a leak.

Covered: bodies far over the limit relayed to a sandbox (refused with 413 as
they stream, without the gateway holding them), unknown fields in JSON
bodies, file names longer than file systems allow (volumes and code
archives), and folder trees nested deeper than Python's recursion limit
(volumes, a sandbox's work dir and the worker's own clean-up).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import select
import shutil
import socket
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Server

from cove import Sandbox
from cove.worker._paths import force_rmtree

MiB = 1024 * 1024
DEPTH = 1500

needs_sandboxes = pytest.mark.skipif(
    shutil.which("crun") is None or os.geteuid() != 0, reason="sandboxes need crun and root"
)


def _http(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _upload_status(server: Server, path: str, size: int, *, declare_length: bool) -> int:
    """PUT ``size`` bytes on a raw socket, stopping as soon as an answer arrives; its status (0: none)."""
    url = urlsplit(server.url)
    framing = f"Content-Length: {size}" if declare_length else "Transfer-Encoding: chunked"
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()
    block = os.urandom(MiB)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(head)
        sent = 0
        with contextlib.suppress(OSError):  # the server may close its side once it has answered
            while sent < size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(block if declare_length else b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
            if sent >= size and not declare_length:
                sock.sendall(b"0\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer and (chunk := sock.recv(4096)):
                answer += chunk
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


@needs_sandboxes
@pytest.mark.timeout(300)
def test_sandbox_relay_refuses_large_bodies_as_they_stream(server: Server, sandbox: Sandbox) -> None:
    target = f"/api/v1/sandboxes/{sandbox.object_id}/fs/write?path=big.bin"
    sandbox.fs.write_bytes("small.bin", b"x" * MiB)  # within the limit: relayed as before
    assert sandbox.fs.read_bytes("small.bin") == b"x" * MiB
    before = _rss_mib(server.proc.pid)
    statuses = [_upload_status(server, target, 150 * MiB, declare_length=False) for _ in range(3)]
    statuses.append(_upload_status(server, target, 150 * MiB, declare_length=True))
    grown = _rss_mib(server.proc.pid) - before
    assert statuses == [413] * 4
    assert grown < 80, f"the gateway grew by {grown:.0f} MiB relaying refused bodies"
    assert "big.bin" not in [f["name"] for f in sandbox.fs.list_files()]


@needs_sandboxes
@pytest.mark.timeout(300)
def test_sandbox_removes_a_tree_deeper_than_the_recursion_limit(sandbox: Sandbox) -> None:
    made = sandbox.process.run_code(
        "import os\n"
        f"for _ in range({DEPTH}):\n"
        "    os.mkdir('d'); os.chdir('d'); open('f', 'w').write('x')\n"
        "os.chmod('.', 0o555)\n",
        timeout=60,
    )
    assert made.exit_code == 0, made.stderr
    sandbox.fs.remove("d", recursive=True)
    assert "d" not in [f["name"] for f in sandbox.fs.list_files()]


def test_unknown_body_fields_are_refused_by_name(server: Server) -> None:
    with _http(server) as http:
        reply = http.post("/api/v1/volumes", json={"name": "strict-vol", "sizee": 10})
        assert reply.status_code == 422 and "sizee" in reply.json()["error"]["message"]
        reply = http.put("/api/v1/workspaces/default/quota", json={"max_containres": 1})
        assert reply.status_code == 422 and "max_containres" in reply.json()["error"]["message"]
        reply = http.post("/api/v1/tokens", json={"name": "t", "roles": "admin"})
        assert reply.status_code == 422 and "roles" in reply.json()["error"]["message"]


def test_names_longer_than_the_file_system_allows_are_refused(server: Server) -> None:
    long_part = "a" * 300
    with _http(server) as http:
        assert http.post("/api/v1/volumes", json={"name": "long-names"}).status_code == 201
        put = http.put(f"/api/v1/volumes/long-names/files/dir/{long_part}", content=b"x")
        assert put.status_code == 400 and "255" in put.json()["error"]["message"], put.text
        assert http.get(f"/api/v1/volumes/long-names/files/{long_part}").status_code == 400
        assert http.delete(f"/api/v1/volumes/long-names/files/{long_part}").status_code == 400
        assert http.get("/api/v1/volumes/long-names/files", params={"path": long_part}).status_code == 400


def test_volume_tree_deeper_than_the_recursion_limit_is_deleted(server: Server) -> None:
    deep = "/".join(["d"] * DEPTH)
    with _http(server) as http:
        assert http.post("/api/v1/volumes", json={"name": "deep-tree"}).status_code == 201
        assert http.put(f"/api/v1/volumes/deep-tree/files/{deep}/f", content=b"x").status_code == 201
        reply = http.delete("/api/v1/volumes/deep-tree/files/d", params={"recursive": "true"})
        assert reply.status_code == 200, reply.text
        assert http.get("/api/v1/volumes/deep-tree/files").json() == []
        assert http.put(f"/api/v1/volumes/deep-tree/files/{deep}/f", content=b"x").status_code == 201
        assert http.delete("/api/v1/volumes/deep-tree").status_code == 200
    assert not list((server.home / "volumes").glob("*/deep-tree"))


@pytest.mark.unit
def test_worker_cleanup_removes_deep_read_only_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "work"
    folder = root
    for _ in range(DEPTH):
        folder.mkdir()
        (folder / "f").write_text("x")
        os.chdir(folder)  # keeps each step short of PATH_MAX
        folder = Path("d")
    os.chdir(tmp_path)
    (root / "d").chmod(0o555)
    force_rmtree(root)
    assert not root.exists()


def _archive_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "said"),
    [("pkg/" + "m" * 300 + ".py", "255"), ("/".join(["p" * 200] * 6) + "/m.py", "1024")],
    ids=["long-name", "long-path"],
)
def test_code_archive_with_names_that_cannot_exist_is_refused(server: Server, name: str, said: str) -> None:
    data = _archive_with(name)
    with _http(server) as http:
        reply = http.put(f"/api/v1/code/{hashlib.sha256(data).hexdigest()}", content=data)
    assert reply.status_code == 400, reply.text
    assert said in reply.json()["error"]["message"]
