"""Code in a container on a worker of another host calls the gateway through that worker's relay.

The relay is tested twice. First on its own, over real sockets: an upstream
HTTP server on loopback stands in for the gateway and records what arrives,
so the test sees that the caller's Authorization header passes untouched, the
worker's token never appears, bodies stream both ways and oversized ones get
413. Then for real: a gateway and a worker each in a network namespace of its
own (the worker with its own home), a function in a crun container on that
worker calls another with ``.remote`` and ``.map`` and puts onto a task queue;
a request through the relay's socket without a token gets the gateway's 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import APPS, free_port

from cove.worker._relay import Relay, RelaySettings, relay_socket_path

NESTED = APPS / "nested" / "app.py"
PORT = 8474


# --- the relay on its own ----------------------------------------------------------------------


async def _upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it got: the Authorization header, the body's size and digest; /big streams 8 MiB."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for _ in range(8):
            await send({"type": "http.response.body", "body": b"x" * (1 << 20), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        digest.update(chunk)
        if not message.get("more_body"):
            break
    body = (
        f'{{"auth": "{headers.get(b"authorization", b"").decode()}", "size": {size}, '
        f'"sha256": "{digest.hexdigest()}", "path": "{scope["path"]}", "query": "{scope["query_string"].decode()}"}}'
    ).encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _relay_to_upstream(tmp_path: Path, max_body: int) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    upstream = _Quiet(uvicorn.Config(_upstream, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.ensure_future(upstream.serve())
    while not upstream.started:
        await asyncio.sleep(0.01)
    relay = Relay(RelaySettings(f"http://127.0.0.1:{port}", max_body_bytes=max_body), relay_socket_path(tmp_path))
    await relay.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(relay.path)), base_url="http://gateway"
        ) as client:
            yield client
    finally:
        await relay.stop()
        upstream.should_exit = True
        await serving


def test_relay_forwards_the_callers_token_only_and_streams_bodies(tmp_path: Path) -> None:
    async def main() -> None:
        async with _relay_to_upstream(tmp_path, max_body=32 << 20) as client:
            path = relay_socket_path(tmp_path)
            assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700  # no other host user gets near it
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o711

            reply = await client.post("/api/v1/calls?x=1", content=b"hi", headers={"Authorization": "Bearer ctok"})
            assert reply.status_code == 201
            assert reply.json() == {
                "auth": "Bearer ctok",
                "size": 2,
                "sha256": hashlib.sha256(b"hi").hexdigest(),
                "path": "/api/v1/calls",
                "query": "x=1",
            }
            assert (await client.get("/none")).json()["auth"] == ""  # no token in, no token out

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(20):
                    yield bytes([i]) * (1 << 20)

            expected = hashlib.sha256(b"".join(bytes([i]) * (1 << 20) for i in range(20))).hexdigest()
            reply = await client.post("/blob", content=chunks())  # chunked upload: no length known up front
            assert reply.json()["size"] == 20 << 20 and reply.json()["sha256"] == expected

            reply = await client.get("/big")
            assert reply.status_code == 200 and len(reply.content) == 8 << 20

            too_big = await client.post("/blob", content=b"x" * ((32 << 20) + 1))
            assert too_big.status_code == 413
            assert "limit of 33554432 bytes" in too_big.json()["error"]["message"]
            # The pool survives a refused request.
            assert (await client.post("/after", content=b"ok")).json()["size"] == 2
        assert not relay_socket_path(tmp_path).exists()

    asyncio.run(main())


def test_relay_answers_502_when_the_gateway_is_unreachable(tmp_path: Path) -> None:
    async def main() -> None:
        relay = Relay(RelaySettings(f"http://127.0.0.1:{free_port()}"), relay_socket_path(tmp_path))
        await relay.start()
        try:
            async with httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(relay.path)), base_url="http://gateway"
            ) as client:
                reply = await client.get("/healthz")
            assert reply.status_code == 502
            assert "cannot reach the gateway" in reply.json()["error"]["message"]
        finally:
            await relay.stop()

    asyncio.run(main())


# --- a worker on another host -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter") or not shutil.which("crun"),
    reason="needs root, ip, nsenter and crun",
)
def test_function_on_a_remote_worker_calls_the_gateway_through_the_relay(tmp_path: Path) -> None:
    from .test_remote_workers import _network, _stop, start_gateway, start_worker

    with _network() as net:
        server = start_gateway(net, tmp_path)
        token = server.token
        worker: subprocess.Popen[bytes] | None = None
        worker_home = tmp_path / "home-a"
        try:
            worker = start_worker(net, server, tmp_path, "a", net.gateway_for_a, net.a, "2000m")
            server.wait_for(lambda: any(w["alive"] for w in server.cli_json("worker", "list")), timeout=30)
            relay = relay_socket_path(worker_home / "workers" / "host-a")
            server.wait_for(relay.is_socket, timeout=10)

            deployed = ("nested_double", "nested_record", "nested_fan_out", "nested_probe")
            with server.deployed_app(NESTED, deployed, "nested_remote_app") as app:
                result = app.nested_fan_out.remote(5)
                probe = app.nested_probe.remote(PORT)
            assert result == {
                "one": 10,
                "many": [0, 2, 4, 6, 8],
                "task": 1005,
                "gateway": "unix:/run/cove/gateway.sock",
            }
            # Every container ran on the remote worker, which has no gateway socket of its own.
            live = [c for c in server.containers() if c["state"] in ("listening", "ready")]
            assert live and {str(c["address"]).split(":")[0] for c in live} == {"tcp"}, live
            # Through the relay the container acts with its own token, a user of its workspace, never the worker.
            assert probe["whoami"]["workspace"] == "default" and probe["whoami"]["role"] == "user"
            assert probe["audit"] == 403
            assert probe["tcp_to_gateway"] == "ConnectionRefusedError"  # still no network in the container

            with httpx.Client(transport=httpx.HTTPTransport(uds=str(relay)), base_url="http://gateway") as http:
                bare = http.get("/api/v1/whoami")
                assert bare.status_code == 401, bare.text
                assert http.post("/taskqueue/nested-record", json={"x": 1}).status_code == 401
                assert http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        finally:
            if worker is not None:
                _stop(worker)
            _stop(server.proc)
        assert not relay.exists()  # the worker removed its socket on the way out
