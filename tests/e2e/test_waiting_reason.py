"""A waiting caller is told why: the 503 body's ``waiting_reason``, ``cove events``, and the SDK's stderr line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, start_server

APP = """
from cove import endpoint

@endpoint(pool="obs", cpu=2, memory=256)
def obs_wait() -> dict:
    return {"ok": True}
"""

SLOW_START = """
import time

from cove import function

time.sleep(3)  # the container takes a while to load the code: its callers wait for it


@function
def slow_start(x: int) -> int:
    return x + 1


def main() -> int:
    return slow_start.remote(41)
"""


@pytest.fixture
def obs_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "cove", None, None, "--worker-cpu", "4")
    worker: list[subprocess.Popen[bytes]] = []
    srv.extra_workers = worker  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        for proc in worker:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        srv.stop()


def _start_worker(server: Server, name: str, cpu: str, pool: str) -> subprocess.Popen[bytes]:
    with server.http() as http:
        reply = http.post("/api/v1/tokens", json={"name": f"worker-{name}", "role": "worker"})
        assert reply.status_code == 201, reply.text
        token = reply.json()["token"]
    with (server.home / f"worker-{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cove", "worker", "--gateway", server.url, "--token", token, "--name", name,
             "--cpu", cpu, "--memory", "2Gi", "--label", f"pool={pool}", "--home", str(server.home)],
            env={**server.env, "COVE_TOKEN": ""}, stdout=log, stderr=log,
        )  # fmt: skip


def _backlog(server: Server) -> list[dict[str, Any]]:
    with server.http() as http:
        events = http.get("/api/v1/events", params={"deployment": "obs-wait", "limit": 1000}).json()["events"]
    return [e for e in events if e["kind"] == "backlog" and e["inputs"].get("waiting")]


def _refused(server: Server) -> dict[str, Any]:
    with server.http() as http:
        reply = http.post("/endpoint/obs-wait", json={}, timeout=30)
    assert reply.status_code == 503, reply.text
    error: dict[str, Any] = reply.json()["error"]
    return error


def test_an_unplaceable_call_names_its_reason_and_the_reason_follows_the_workers(
    obs_server: Server, tmp_path: Path
) -> None:
    server = obs_server
    (tmp_path / "app.py").write_text(APP)
    server.deploy(f"{tmp_path / 'app.py'}:obs_wait", "--force")

    started = time.monotonic()
    error = _refused(server)
    assert error["type"] == "NoCapacity"
    first = error["waiting_reason"]
    assert "pool 'obs'" in first and "pool 'obs'" in error["message"]
    # The event log names the same reason within a second of the call.
    rows = server.wait_for(lambda: [e for e in _backlog(server) if first in e["reason"]], timeout=1, interval=0.05)
    assert time.monotonic() - started < 5 and rows[0]["inputs"]["workers"] == 1
    # (Nothing waits once the call was refused: the waiting route is checked during a wait, below.)

    # A worker joins the pool, but with too little room: the reason changes to what is missing now.
    obs_server.extra_workers.append(_start_worker(server, "obs-small", "1", "obs"))  # type: ignore[attr-defined]
    server.wait_for(lambda: any(w["name"] == "obs-small" for w in server.cli_json("worker", "list")), timeout=30)
    second = _refused(server)["waiting_reason"]
    assert second != first and "2000m cpu" in second, second
    server.wait_for(lambda: any(second in e["reason"] for e in _backlog(server)), timeout=1, interval=0.05)
    human = server.cli("events", "obs-wait").stdout
    assert "work waits for a container" in " ".join(human.split())

    # One that can hold it joins: the call is served there, and nothing holds its calls back any more.
    obs_server.extra_workers.append(_start_worker(server, "obs-big", "4", "obs"))  # type: ignore[attr-defined]
    server.wait_for(lambda: any(w["name"] == "obs-big" for w in server.cli_json("worker", "list")), timeout=30)
    with server.http() as http:
        assert http.post("/endpoint/obs-wait", json={}, timeout=60).json() == {"ok": True}
        assert http.get("/api/v1/deployments/obs-wait/waiting").json()["reason"] is None

    def placed() -> bool:
        with server.http() as http:
            events = http.get("/api/v1/events", params={"deployment": "obs-wait", "limit": 1000}).json()["events"]
        return any(e["kind"] == "placed" and e["inputs"]["worker"] == "obs-big" for e in events)

    server.wait_for(placed, timeout=2, interval=0.05)


def test_cove_run_prints_why_a_call_waits_when_it_waits_over_a_second(server: Server, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SLOW_START)
    server.deploy(f"{tmp_path / 'app.py'}:slow_start")
    runs: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: runs.append(server.cli("run", f"{tmp_path / 'app.py'}:main", timeout=120)))
    runner.start()

    def waiting() -> str | None:
        with server.http() as http:
            reason: str | None = http.get("/api/v1/deployments/slow-start/waiting").json()["reason"]
        return reason

    # While the call waits, the route the SDK polls says why, in the scheduler's words.
    said = server.wait_for(waiting, timeout=60, interval=0.1)
    assert said.startswith("container ctr-") and "is starting on worker local" in said, said
    runner.join(timeout=120)
    (done,) = runs
    assert "42" in done.stdout
    assert waiting() is None  # answered: nothing waits now
    lines = [line for line in done.stderr.splitlines() if line.startswith("cove: slow-start waits:")]
    assert lines and "is starting on worker local" in lines[0], done.stderr
    assert len(lines) == len(set(lines))  # one line per reason, not one per look

    # A call answered at once (the container is warm now) prints nothing.
    again = server.cli("run", f"{tmp_path / 'app.py'}:main", timeout=60)
    assert "waits:" not in again.stderr


def test_the_waiting_route_needs_a_token(server: Server) -> None:
    reply = httpx.get(f"{server.url}/api/v1/deployments/anything/waiting", timeout=10)
    assert reply.status_code == 401


FUNCTION_APP = """
from cove import function

@function(pool="obs", cpu=2, memory=256)
def obs_fn(x: int) -> int:
    return x + 1
"""


def test_a_function_refused_before_it_queues_leaves_a_backlog_row(obs_server: Server, tmp_path: Path) -> None:
    import pickle

    server = obs_server
    (tmp_path / "fn.py").write_text(FUNCTION_APP)
    server.deploy(f"{tmp_path / 'fn.py'}:obs_fn", "--force")

    def backlog() -> list[dict[str, Any]]:
        with server.http() as http:
            events = http.get("/api/v1/events", params={"deployment": "obs-fn", "limit": 1000}).json()["events"]
        return [e for e in events if e["kind"] == "backlog"]

    def call() -> httpx.Response:
        with server.http() as http:
            return http.post(
                "/api/v1/functions/obs-fn/calls",
                content=pickle.dumps(((1,), {})),
                headers={"Content-Type": "application/octet-stream"},
                timeout=60,
            )

    for _ in range(3):  # each call is refused; the event log says so once, not once per call
        refused = call()
        assert refused.status_code == 503, refused.text
    reason = refused.json()["error"]["waiting_reason"]
    assert "pool 'obs'" in reason
    rows = server.wait_for(backlog, timeout=1, interval=0.05)
    assert len(rows) == 1 and reason in rows[0]["reason"] and "refused" in rows[0]["reason"]
    assert rows[0]["inputs"]["waiting"] is True and rows[0]["inputs"]["workers"] == 1

    # A worker that can hold it joins: the call runs, and the log says calls are accepted again.
    obs_server.extra_workers.append(_start_worker(server, "obs-fn-big", "4", "obs"))  # type: ignore[attr-defined]
    server.wait_for(lambda: any(w["name"] == "obs-fn-big" for w in server.cli_json("worker", "list")), timeout=30)
    served = call()
    assert served.status_code == 200 and pickle.loads(served.content) == 2
    after = server.wait_for(lambda: len(backlog()) >= 2 and backlog(), timeout=2, interval=0.05)
    assert after[1]["inputs"]["waiting"] is False and "accepted again" in after[1]["reason"]
