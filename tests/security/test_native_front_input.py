"""Hostile bytes at the native front (``cove server --native-front``), the C parser on the public port.

Truncated, oversized, binary and contradictory requests, sent while the
front knows a warm route, must neither stop it nor make it serve a request
the gateway's parser would refuse: after them, a plain warm call is still
answered by the front, and the process is the same one.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import APPS, Server, start_server

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="--native-front builds cove-front with cc")

BASIC = APPS / "basic" / "app.py"


@pytest.fixture(scope="module")
def front_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("home") / "cove", None, {"COVE_NATIVE_FRONT": "1"})
    yield srv
    srv.stop()


def _send(server: Server, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data`` on a fresh connection and read whatever comes back until it closes (or 10 s pass)."""
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return got


def _front_pid(server: Server) -> int:
    children = ["pgrep", "-P", str(server.proc.pid), "-f", "cove-front"]
    (pid,) = map(int, subprocess.run(children, capture_output=True, text=True).stdout.split())
    return pid


def test_hostile_bytes_neither_stop_the_front_nor_get_served(front_server: Server) -> None:
    server = front_server
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        for _ in range(2):  # warm, and the front knows the route
            assert http.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
    pid = _front_pid(server)
    auth = f"Authorization: Bearer {server.token}\r\n".encode()
    start = b"POST /endpoint/add HTTP/1.1\r\nHost: x\r\n" + auth
    body = b'{"a": 1, "b": 1}'
    refused = [
        start + b"Content-Length: 16\r\nContent-Length: 17\r\n\r\n" + body,  # two lengths
        start + b"Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n" + body,  # length and chunks
        start + b"Content-Length: -16\r\n\r\n" + body,
        start + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n" + body,
        start + b"Content-Length: 16\r\n\x00bad: header\r\n\r\n" + body,
    ]
    for request in refused:
        answer = _send(server, request)
        assert not answer.startswith(b"HTTP/1.1 200 "), (request, answer[:200])
    rng = random.Random(14)
    noise = [
        b"\x00" * 4096,
        bytes(rng.getrandbits(8) for _ in range(70_000)),
        start + b"Content-Length: 16\r\n",  # a head that never ends
        start + b"Content-Length: 16\r\n\r\n" + body[:5],  # a body cut short
        b"POST /endpoint/" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        start + b"X-Request-Id: " + b"\xff" * 300 + b"\r\nContent-Length: 16\r\n\r\n" + body,
        start + b"traceparent: 00--" + b"-" * 60 + b"\r\nContent-Length: 16\r\n\r\n" + body,
        start + b"Accept: " + b"A" * 15_000 + b"\r\nContent-Length: 16\r\n\r\n" + body,
    ]
    for data in noise:
        _send(server, data)
    for data in noise[:3]:  # and the same again without a half-close: the connection just ends
        _send(server, data, half_close=False)
    assert Path(f"/proc/{pid}").exists() and _front_pid(server) == pid, "the front died or was replaced"
    with server.http() as http:
        answers = [http.post("/endpoint/add", json={"a": i, "b": 1}) for i in range(5)]
    assert [a.json() for a in answers] == [{"sum": i + 1} for i in range(5)]
