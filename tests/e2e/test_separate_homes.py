"""Two ``cove server``s with homes of their own on one PostgreSQL, one host: one cluster, no shared folder.

Each server runs its local worker. Everything is deployed through the first
server (A); the second (B) serves calls, task puts and results and blobs, and
its worker runs the containers (A's worker is cordoned), so B has to fetch
code and image archives by hash from A. Then a new version is deployed
through A (a code archive only A and the database hold) and A is SIGKILLed
while tasks are being put through B: B leads, every accepted task completes,
and the new version's container, started through B with its code from the
database, reads the secret created through A (the key comes from
``COVE_SECRET_KEY``, the same on both). A third server with another key is
refused at start.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, UV_CACHE, Server, free_port
from cryptography.fernet import Fernet
from pg_cluster import PgCluster

APP = APPS / "homes" / "app.py"
SECRET_VALUE = "s3cr3t-through-a"


def _env(home: Path, database_url: str, port: int, key: bytes) -> dict[str, str]:
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": f"http://127.0.0.1:{port}",
        "COVE_DATABASE_URL": database_url,
        "COVE_SECRET_KEY": key.decode(),
    }
    env.pop("COVE_TOKEN", None)
    return env


def _health(url: str) -> dict[str, Any] | None:
    try:
        reply = httpx.get(f"{url}/healthz", timeout=2)
        return reply.json() if reply.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _launch(
    home: Path, database_url: str, key: bytes, *options: str
) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _env(home, database_url, port, key)
    with (home / "test-server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--port", str(port), "--home", str(home), *options],
            env=env,
            stdout=log,
            stderr=log,
        )
    return proc, f"http://127.0.0.1:{port}", env


def _start(home: Path, database_url: str, key: bytes, token: str | None = None, *options: str) -> Server:
    """A ``cove server`` (with ``options``) on its own home, once healthy; ``token``: its admin's, else its own."""
    proc, url, env = _launch(home, database_url, key, *options)
    deadline = time.monotonic() + 60
    while _health(url) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start:\n{(home / 'test-server.log').read_text()}")
        time.sleep(0.1)
    token = token or (home / "admin-token").read_text().strip()
    return Server(url=url, home=home, token=token, proc=proc, env=env)


def _query(database_url: str, sql: str) -> list[Any]:
    import asyncio

    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def _put(http: httpx.Client, i: int) -> str:
    for _ in range(100):
        reply = http.post("/taskqueue/double", json={"i": i})
        if reply.status_code == 202:
            return str(reply.json()["task_id"])
        assert reply.status_code == 503, reply.text
        time.sleep(0.2)
    raise AssertionError(f"put {i} was never accepted")


def _answered(http: httpx.Client, path: str) -> httpx.Response | None:
    reply = http.post(path, json={})
    return reply if reply.status_code == 200 else None


def _workers(server: Server) -> list[dict[str, Any]]:
    with server.http() as http:
        reply = http.get("/api/v1/workers")
    return list(reply.json()) if reply.status_code == 200 else []


@pytest.fixture
def homes(tmp_path: Path, postgres: PgCluster) -> Iterator[tuple[Server, Server, str]]:
    database_url = postgres.url(postgres.create_database())
    key = Fernet.generate_key()
    a = _start(tmp_path / "a", database_url, key)
    b = _start(tmp_path / "b", database_url, key, token=a.token)  # the workspace (and its admin) came with A
    try:
        yield a, b, database_url
    finally:
        b.stop()
        a.stop()


@pytest.mark.slow
def test_two_homes_one_cluster(homes: tuple[Server, Server, str], tmp_path: Path, app_copy: Any) -> None:
    a, b, database_url = homes
    assert (_health(a.url) or {}).get("leader") is True and (_health(b.url) or {}).get("leader") is False
    # Both local workers are called "local"; each home gives its own an identity, so neither supersedes the other.
    workers = a.wait_for(lambda: [w for w in _workers(a) if w["alive"]] if len(_workers(a)) == 2 else None)
    assert {w["name"] for w in workers} == {"local"} and len({w["id"] for w in workers}) == 2
    time.sleep(3)  # a few heartbeats: a worker that superseded the other would show here
    assert sorted(w["alive"] for w in _workers(a)) == [True, True]
    identity_a = (a.home / "workers" / "local" / "worker-id").read_text().strip()
    newest = f"SELECT id FROM workers WHERE identity = '{identity_a}' ORDER BY registered_at DESC LIMIT 1"
    [worker_a] = _query(database_url, newest)
    with a.http() as http:
        assert http.post(f"/api/v1/workers/{worker_a['id']}/cordon").status_code == 200

    a.cli("secret", "create", "homes-creds", f"API_KEY={SECRET_VALUE}")
    for name in ("hello", "square", "double", "show_secret"):
        a.deploy(f"{APP}:{name}")
    assert not list((b.home / "blobs" / "code").glob("*.tar.gz"))  # nothing reached B's home yet

    with b.http() as via_b:
        reply = via_b.post("/endpoint/hello", json={"name": "b"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["hello"] == "b"
        # B fetched the code archive and the image by hash (for its worker) and keeps them.
        assert list((b.home / "blobs" / "code").glob("*.tar.gz"))

        ids = [via_b.post("/taskqueue/double", json={"i": i}).json()["task_id"] for i in range(20)]
        results = [via_b.get(f"/api/v1/calls/{task_id}", params={"wait": 60}) for task_id in ids]
        assert [r.json() for r in results] == [2 * i for i in range(20)]

        data = os.urandom(300_000)
        digest = hashlib.sha256(data).hexdigest()
        assert via_b.put(f"/api/v1/blobs/{digest}", content=data).status_code == 201
        assert via_b.get(f"/api/v1/blobs/{digest}").content == data
        with a.http() as via_a:
            assert via_a.get(f"/api/v1/blobs/{digest}").content == data
        # Gateways fetch from each other with a token derived from the cluster's key; a user's token is no such.
        workspace = _query(database_url, "SELECT id FROM workspaces WHERE name = 'default'")[0]["id"]
        assert via_b.get(f"/api/v1/peer/blobs/{workspace}/{digest}").status_code == 403

    with b.deployed_app(APP, (), "homes_app") as module:
        assert module.square.remote(7) == 49
        assert list(module.square.map(range(50))) == [i * i for i in range(50)]

    # A new code archive reaches A only (and the database); then A dies while B takes tasks.
    copy = app_copy("homes")
    (copy / "README.txt").write_text("a second code archive\n")
    a.deploy(f"{copy / 'app.py'}:show_secret")
    expected: dict[str, int] = {}
    with b.http() as via_b:
        for i in range(40):
            expected[_put(via_b, i)] = i
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        for i in range(40, 80):  # a 503 only while no gateway leads
            expected[_put(via_b, i)] = i
        b.wait_for(lambda: (_health(b.url) or {}).get("leader") is True, timeout=30)
        for task_id, i in expected.items():
            answer = via_b.get(f"/api/v1/calls/{task_id}", params={"wait": 60})
            assert answer.status_code == 200 and answer.json() == 2 * i, answer.text

        reply = b.wait_for(lambda: _answered(via_b, "/endpoint/show-secret"), timeout=90, interval=0.5)
        assert reply.json() == {"value": SECRET_VALUE}

    # A gateway with another secret key would seal and open secrets differently: it refuses to start.
    proc, *_ = _launch(tmp_path / "c", database_url, Fernet.generate_key())
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert code != 0
    log = (tmp_path / "c" / "test-server.log").read_text()
    assert "COVE_SECRET_KEY" in log and "differs" in log, log[-2000:]
