"""Worker operations on a real server with two workers: list, cordon, drain under load, uncordon, bad tokens."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, start_server

APP = APPS / "workerops" / "app.py"


def _start_worker(server: Server, name: str, token: str, cpu: str) -> subprocess.Popen[bytes]:
    with (server.home / f"worker-{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cove", "worker", "--gateway", server.url, "--token", token, "--name", name,
             "--cpu", cpu, "--memory", "8Gi", "--home", str(server.home)],
            env={**server.env, "COVE_TOKEN": ""},
            stdout=log,
            stderr=log,
        )  # fmt: skip


def _workers(server: Server) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in server.cli_json("worker", "list") if w["state"] != "lost"}


def _worker_token(server: Server) -> str:
    with server.http() as http:
        reply = http.post("/api/v1/tokens", json={"name": "extra-worker", "role": "worker"})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["token"])


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with its local worker plus a second worker ``w2`` on the same home (tests run in order)."""
    server = start_server(tmp_path_factory.mktemp("ops") / "cove")
    extra = _start_worker(server, "w2", _worker_token(server), "4")
    try:
        server.wait_for(lambda: {"local", "w2"} <= set(_workers(server)), timeout=30)
        yield server
    finally:
        extra.terminate()
        try:
            extra.wait(timeout=20)
        except subprocess.TimeoutExpired:
            extra.kill()
            extra.wait()
        server.stop()


def _container_worker(server: Server, deployment: str) -> dict[str, str]:
    """Live container id -> worker id, from ``cove ps``."""
    return {c["id"]: c["worker_id"] for c in server.containers(deployment) if c["state"] in ("listening", "ready")}


def test_list_shows_capacity_state_and_containers(two_workers: Server) -> None:
    workers = _workers(two_workers)
    w2 = workers["w2"]
    assert w2["state"] == "active" and w2["alive"] is True
    assert w2["cpu_millis"] == 4000 and w2["free_cpu_millis"] == 4000
    assert w2["memory_mib"] == 8192 and w2["containers"] == 0
    assert w2["runtime"] in ("crun", "runc", "process")
    assert time.time() - w2["last_heartbeat"] < 10
    human = two_workers.cli("worker", "list").stdout
    assert "w2" in human and "local" in human


def test_cordon_keeps_new_containers_off_and_drain_moves_them_without_failing_requests(two_workers: Server) -> None:
    server = two_workers
    ids = {name: w["id"] for name, w in _workers(server).items()}
    # w2 (4 cores) is the best fit for a 1-core container; cordoned, it gets nothing.
    assert server.cli_json("worker", "cordon", "w2")["state"] == "cordoned"
    server.deploy(f"{APP}:single")
    with server.http() as http:
        assert http.post("/endpoint/single", json={"i": 1}).status_code == 200
    placed = _container_worker(server, "single")
    assert list(placed.values()) == [ids["local"]]
    assert _workers(server)["local"]["containers"] == 1

    server.cli_json("worker", "uncordon", "w2")
    assert _workers(server)["w2"]["state"] == "active"

    # Drain the local worker under steady load: the container moves to w2 and no request fails.
    failures: list[str] = []
    served_by: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with server.http() as http:
            i = 0
            while not stop.is_set():
                reply = http.post("/endpoint/single", json={"i": i})
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text}")
                else:
                    served_by.add(reply.json()["container"])
                i += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        old = next(iter(placed))
        drained = server.cli_json("worker", "drain", "local", "--wait", "--timeout", "60")
        assert drained["state"] == "draining" and drained["containers"] == 0
        time.sleep(0.5)  # requests keep flowing to the replacement
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    moved = _container_worker(server, "single")
    assert len(moved) == 1 and list(moved.values()) == [ids["w2"]]
    assert old in served_by and next(iter(moved)) in served_by
    stopped = {c["id"]: c for c in server.containers("single", all_=True)}[old]
    assert "drained" in (stopped.get("reason") or ""), stopped

    # A drained worker stays empty until uncordoned, also when it restarts (cordon is kept by name).
    assert _workers(server)["local"]["state"] == "draining"
    assert server.cli_json("worker", "uncordon", "local")["state"] == "active"


def test_worker_commands_need_an_admin_token_and_name_unknown_workers(two_workers: Server) -> None:
    server = two_workers
    with server.http() as http:
        user = http.post("/api/v1/tokens", json={"name": "u", "role": "user"}).json()["token"]
    refused = server.cli("worker", "cordon", "w2", "--json", token=user, check=False)
    assert refused.returncode != 0 and "admin" in refused.stdout
    missing = server.cli("worker", "drain", "nope", "--json", check=False)
    assert missing.returncode != 0 and "no live worker" in missing.stdout and "w2" in missing.stdout


def test_a_worker_with_a_bad_token_is_refused(server: Server) -> None:
    body = {"name": "intruder", "cpu_millis": 1000, "memory_mib": 1024}
    assert httpx.post(f"{server.url}/api/v1/workers/register", json=body).status_code == 401
    bad = httpx.post(f"{server.url}/api/v1/workers/register", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    with server.http() as http:
        user = http.post("/api/v1/tokens", json={"name": "not-a-worker", "role": "user"}).json()["token"]
    as_user = httpx.post(
        f"{server.url}/api/v1/workers/register", json=body, headers={"Authorization": f"Bearer {user}"}
    )
    assert as_user.status_code == 403 and "worker" in as_user.json()["error"]["message"]
    # The worker process itself stops at once with the reason, instead of retrying forever.
    done = subprocess.run(
        [sys.executable, "-m", "cove", "worker", "--gateway", server.url, "--token", "nope", "--name", "intruder",
         "--home", str(server.home / "intruder")],
        env={**server.env, "COVE_TOKEN": ""}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "refused this worker (401)" in done.stderr + done.stdout
    names = {w["name"] for w in server.cli_json("worker", "list")}
    assert "intruder" not in names
