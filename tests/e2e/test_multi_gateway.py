"""Two gateways on one PostgreSQL: tasks flow through both, the leader is SIGKILLed, the lease moves, none is lost.

Real processes throughout: a throwaway PostgreSQL, two ``cove server
--no-worker`` gateways sharing one Cove home, and one ``cove worker`` that
talks to the second gateway (which forwards to whichever gateway leads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import APPS, UV_CACHE, Server, free_port
from pg_cluster import PgCluster

APP = APPS / "cluster" / "app.py"
PER_GATEWAY = 150


def _env(home: Path, database_url: str, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": f"http://127.0.0.1:{port}",
        "COVE_DATABASE_URL": database_url,
    }
    env.pop("COVE_TOKEN", None)
    return env


def _health(url: str) -> dict[str, Any] | None:
    try:
        reply = httpx.get(f"{url}/healthz", timeout=2)
        return reply.json() if reply.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _start_gateway(home: Path, database_url: str, log_name: str) -> Server:
    port = free_port()
    env = _env(home, database_url, port)
    with (home / log_name).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--no-worker", "--port", str(port), "--home", str(home)],
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _health(url) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gateway did not start:\n{(home / log_name).read_text()}")
        time.sleep(0.1)
    token = (home / "admin-token").read_text().strip()
    return Server(url=url, home=home, token=token, proc=proc, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _query(database_url: str, sql: str) -> list[Any]:
    import asyncio

    async def run() -> list[Any]:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def _tasks(database_url: str) -> list[Any]:
    return _query(database_url, "SELECT id, state, result, attempt, owner FROM tasks WHERE name = 'durable'")


def _complete(database_url: str) -> int:
    return sum(1 for row in _tasks(database_url) if row["state"] == "COMPLETE")


def _put(http: httpx.Client, i: int) -> str:
    for _ in range(50):  # a 503 only while no gateway leads; a put answered 202 is durable
        reply = http.post("/taskqueue/durable", json={"i": i})
        if reply.status_code == 202:
            return str(reply.json()["task_id"])
        assert reply.status_code == 503, reply.text
        time.sleep(0.2)
    raise AssertionError(f"put {i} was never accepted")


@pytest.fixture
def cluster(tmp_path: Path, postgres: PgCluster) -> Iterator[tuple[Server, Server, str]]:
    database_url = postgres.url(postgres.create_database())
    home = tmp_path / "cove"
    home.mkdir()
    first = _start_gateway(home, database_url, "gateway-a.log")
    second = _start_gateway(home, database_url, "gateway-b.log")
    with (home / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "cove", "worker", "--gateway", second.url, "--token", first.token,
                "--name", "w1", "--cpu", "4000m", "--memory", "8Gi", "--home", str(home),
            ],
            env=second.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield first, second, database_url
    finally:
        _stop(worker)
        _stop(second.proc)
        _stop(first.proc)


@pytest.mark.slow
def test_two_gateways_leader_killed_mid_run_no_task_lost(cluster: tuple[Server, Server, str]) -> None:
    first, second, database_url = cluster
    assert (_health(first.url) or {}).get("leader") is True
    assert (_health(second.url) or {}).get("leader") is False
    [lease] = _query(database_url, "SELECT holder, url, epoch FROM cluster_leases WHERE name = 'scheduler'")
    assert lease["url"] == first.url
    # The worker talks only to the follower, which forwards it to the leader.
    second.wait_for(lambda: (_health(first.url) or {}).get("workers") == 1, timeout=30)

    deployed = second.deploy(f"{APP}:durable")  # a control-plane change through the follower
    assert deployed["name"] == "durable"

    expected: dict[str, int] = {}
    with first.http() as via_first, second.http() as via_second:
        # A caller on the follower waits for a task the leader accepted: woken by NOTIFY.
        probe = _put(via_first, 10_000)
        expected[probe] = 10_000
        answer = via_second.get(f"/api/v1/calls/{probe}", params={"wait": 60})
        assert answer.status_code == 200 and answer.json() == 10_000**2
        for i in range(PER_GATEWAY):
            expected[_put(via_first, i)] = i
            expected[_put(via_second, PER_GATEWAY + i)] = PER_GATEWAY + i
        owners = {row["owner"] for row in _tasks(database_url)}
        assert lease["holder"] in owners  # the follower's tasks were claimed by the leader

        deadline = time.monotonic() + 60
        while _complete(database_url) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        open_at_kill = len(expected) - _complete(database_url)
        assert open_at_kill > PER_GATEWAY, "the leader must die while most tasks are still open"
        first.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.proc.wait(timeout=10)

        # The lease moves to the survivor within seconds.
        second.wait_for(lambda: (_health(second.url) or {}).get("leader") is True, timeout=20)
        takeover = time.monotonic() - killed_at
        [moved] = _query(database_url, "SELECT holder, url, epoch FROM cluster_leases WHERE name = 'scheduler'")
        assert moved["url"] == second.url and moved["epoch"] == lease["epoch"] + 1
        assert takeover < 15, takeover
        print(f"lease moved {takeover:.1f} s after SIGKILL, with {open_at_kill} tasks open at the kill")

        for i in range(2 * PER_GATEWAY, 2 * PER_GATEWAY + 50):  # tasks keep flowing through the survivor
            expected[_put(via_second, i)] = i

    deadline = time.monotonic() + 120
    while _complete(database_url) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = _tasks(database_url)
    assert len(rows) == len(expected) and {row["id"] for row in rows} == set(expected)
    assert {row["state"] for row in rows} == {"COMPLETE"}, sorted({row["state"] for row in rows})
    for row in rows:
        assert json.loads(row["result"]) == expected[row["id"]] ** 2
    assert {row["owner"] for row in rows} >= {moved["holder"]}
    assert any(row["attempt"] > 1 for row in rows)  # attempts in flight when the leader died ran again


def test_a_follower_refuses_puts_past_max_pending_tasks(cluster: tuple[Server, Server, str]) -> None:
    """The follower cannot see the leader's queue: it counts the waiting rows in the store instead."""
    _, second, _ = cluster
    second.deploy(f"{APP}:bounded")  # max_pending_tasks=3, each task takes 2 s
    with second.http() as via_second:
        answers = [via_second.post("/taskqueue/bounded", json={"i": i}) for i in range(8)]
    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert refused[0].headers["retry-after"] == "1"
    assert "max_pending_tasks=3" in refused[0].json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "query", "local"),
    [
        ("GET", "/healthz", b"", True),
        ("GET", "/api/v1/deployments", b"", True),
        ("GET", "/api/v1/calls/tsk-1", b"wait=30", True),  # waits on NOTIFY, reads the row
        ("POST", "/taskqueue/durable", b"", True),  # committed unclaimed; the leader takes it
        ("POST", "/api/v1/functions/f/calls", b"wait=false", True),  # .spawn: the same
        ("POST", "/api/v1/functions/f/calls", b"", True),  # .remote: committed, answered on its NOTIFY
        ("POST", "/api/v1/functions/f/calls", b"wait=true&version=2", True),
        ("POST", "/api/v1/functions/f/maps", b"", True),  # a map is a row; its inputs are rows with its id
        ("POST", "/api/v1/maps/map-1/inputs", b"", True),
        ("DELETE", "/api/v1/maps/map-1", b"", True),  # marked in the store; the leader cancels what it holds
        ("POST", "/endpoint/predict", b"", True),  # relayed to a ready container; a cold one asks the leader for one
        ("GET", "/api/v1/workers/wrk-1/orders", b"wait=20", False),
        ("GET", "/api/v1/containers", b"", False),
        ("GET", "/api/v1/maps/map-1/outputs", b"", True),  # read from the store after the caller's cursor
        ("GET", "/api/v1/calls/tsk-1/output", b"after=0&wait=30", True),  # read from the leader: the output only
        ("POST", "/api/v1/calls/tsk-1/output", b"", False),  # a container's output: the leader holds the call
        ("POST", "/api/v1/sandboxes/sb-1/exec", b"", True),  # relayed to the sandbox's container
        ("GET", "/api/v1/sandboxes/sb-1/exec/p-1/stdout", b"after=0", True),
        ("PUT", "/api/v1/sandboxes/sb-1/fs/write", b"path=a", True),
        ("GET", "/api/v1/sandboxes/sb-1", b"", False),  # its deadlines are the leader's
        ("DELETE", "/api/v1/sandboxes/sb-1", b"", False),
        ("POST", "/api/v1/sandboxes", b"", False),
        ("GET", "/api/v1/sandboxes", b"", False),
        ("GET", "/api/v1/workspaces/default/quota", b"", True),  # the limits' row, the containers' rows
        ("PUT", "/api/v1/workspaces/default/quota", b"", False),  # a change: the leader enforces it
        ("POST", "/api/v1/functions/f/stream", b"", True),  # .remote_gen: relayed to a ready container
        ("GET", "/api/v1/workspaces", b"", True),
        ("POST", "/api/v1/deployments", b"", False),
        ("DELETE", "/api/v1/secrets/s", b"", False),
    ],
)
@pytest.mark.unit
def test_what_a_follower_answers_itself(method: str, path: str, query: bytes, local: bool) -> None:
    from cove.cluster import served_by_follower

    assert served_by_follower({"method": method, "path": path, "query_string": query}) is local


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/endpoint/predict", "endpoint"),
        ("/api/v1/functions/f/calls", "call"),
        ("/api/v1/functions/f/stream", "call"),
        ("/api/v1/calls/tsk-1/output", "output"),  # a container's post: the caller's reads never come here
        ("/asgi/shop/items", "asgi"),
        ("/api/v1/sandboxes/sb-1/exec", "sandbox"),
        ("/api/v1/workers/w-1/heartbeat", "worker"),  # a worker that talks to a follower
        ("/api/v1/deployments", "other"),
    ],
)
@pytest.mark.unit
def test_how_the_leader_labels_what_reaches_it_forwarded(path: str, route: str) -> None:
    from cove.cluster import forwarded_route

    assert forwarded_route(path) == route
