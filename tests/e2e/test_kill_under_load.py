"""Gateways SIGKILLed under load: no accepted task is lost, and the gateway that survives keeps answering.

Real processes: a throwaway PostgreSQL, a leader (A) and a follower (B)
with homes of their own (``--no-worker``, one ``COVE_SECRET_KEY``) and one
``cove worker --advertise-host 127.0.0.1`` on B (its containers listen on TCP,
so every gateway relays to them; it stands for a worker on another host,
which outlives the gateways). While ``.remote`` calls, endpoint
invocations and task puts flow through both gateways:

1. B is SIGKILLed: every request through A keeps answering, at once.
2. B comes back on its port (its worker reconnects); then A is SIGKILLed:
   B keeps answering warm invocations from its own view, takes the lease,
   and its calls and puts answer again.

Every task either gateway accepted (a 202) completes exactly once: one row,
``COMPLETE``, with its result; so does every row either gateway committed
(a put cut off by the kill may have been committed without its answer).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import APPS, Server, free_port
from cryptography.fernet import Fernet
from pg_cluster import PgCluster

from cove.sdk._calls import dumps_arguments, loads_result

from .test_separate_homes import _env, _health, _query

APP = APPS / "homes" / "app.py"
OCTETS = {"Content-Type": "application/octet-stream"}
KINDS = {"put", "endpoint", "remote"}

pytestmark = pytest.mark.slow


def _serve(home: Path, database_url: str, key: bytes, port: int, token: str | None = None) -> Server:
    """A ``cove server --no-worker`` on ``port`` (the same port again after a kill), once healthy."""
    home.mkdir(parents=True, exist_ok=True)
    env = _env(home, database_url, port, key)
    url = f"http://127.0.0.1:{port}"
    with (home / "test-server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--port", str(port), "--home", str(home), "--no-worker"],
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while _health(url) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start:\n{(home / 'test-server.log').read_text()[-4000:]}")
        time.sleep(0.1)
    return Server(url=url, home=home, token=token or (home / "admin-token").read_text().strip(), proc=proc, env=env)


@dataclass
class _Load:
    """Requests of each kind through one gateway, one after another, until stopped; what each answered, and when."""

    server: Server
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, str, int]] = field(default_factory=list)  # (when, kind, status; 0: no answer)
    accepted: dict[str, int] = field(default_factory=dict)  # task id -> its input
    thread: threading.Thread | None = None

    def start(self, first: int) -> _Load:
        self.thread = threading.Thread(target=self._run, args=(first,), daemon=True)
        self.thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=120)

    def since(self, moment: float) -> list[tuple[str, int]]:
        return [(kind, status) for when, kind, status in self.answers if when >= moment]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as http:
            http.headers["Authorization"] = f"Bearer {self.server.token}"
            while not self.stop.is_set():
                i += 1
                for kind in ("put", "endpoint", "remote"):
                    self._one(http, kind, i)

    def _one(self, http: httpx.Client, kind: str, i: int) -> None:
        try:
            reply = _send(http, kind, i)
        except httpx.HTTPError:
            self.answers.append((time.monotonic(), kind, 0))
            time.sleep(0.05)
            return
        status = reply.status_code
        if kind == "put" and status == 202:
            self.accepted[str(reply.json()["task_id"])] = i
        elif kind == "endpoint" and status == 200:
            assert reply.json()["hello"] == str(i), reply.text
        elif kind == "remote" and status == 200:
            assert loads_result(reply.content) == i * i
        self.answers.append((time.monotonic(), kind, status))


def _send(http: httpx.Client, kind: str, i: int) -> httpx.Response:
    """One request of ``kind``: a task put, an endpoint invocation or a ``.remote`` call."""
    if kind == "put":
        return http.post("/taskqueue/double", json={"i": i})
    if kind == "endpoint":
        return http.post("/endpoint/hello", json={"name": str(i)})
    return _remote(http, i)


def _remote(http: httpx.Client, i: int) -> httpx.Response:
    """``square.remote(i)`` over plain HTTP: a 200 with the pickled result once the call ends."""
    return http.post("/api/v1/functions/square/calls", content=dumps_arguments((i,), {}), headers=OCTETS)


@pytest.fixture
def cluster(tmp_path: Path, postgres: PgCluster) -> Iterator[tuple[list[Server], str, bytes]]:
    """[leader, follower] (a server started again is appended, to be stopped too), the database URL, the key."""
    database_url = postgres.url(postgres.create_database())
    key = Fernet.generate_key()
    a = _serve(tmp_path / "a", database_url, key, free_port())
    b = _serve(tmp_path / "b", database_url, key, free_port(), a.token)
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cove", "worker", "--gateway", b.url, "--token", a.token, "--name", "w1",
             "--cpu", "4000m", "--memory", "4Gi", "--home", str(tmp_path / "worker"), "--advertise-host", "127.0.0.1"],
            env={**b.env, "COVE_HOME": str(tmp_path / "worker")}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    servers = [a, b]
    try:
        a.wait_for(lambda: (_health(a.url) or {}).get("workers") == 1, timeout=30)
        for name in ("hello", "square", "double"):
            a.deploy(f"{APP}:{name}")
        yield servers, database_url, key
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        for server in servers:
            server.stop()


def _kill(server: Server) -> float:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    return time.monotonic()


def _warm(server: Server) -> None:
    """One answer of each kind through ``server``: the containers run and ``server`` sees them ready."""
    with server.http() as http:
        http.timeout = httpx.Timeout(120)
        # A follower that just came back may answer 503 until its worker has reconnected: wait for that.
        server.wait_for(lambda: http.post("/endpoint/hello", json={}).status_code == 200, timeout=60, interval=0.5)
        assert _remote(http, 3).status_code == 200
        put = http.post("/taskqueue/double", json={"i": 1})
        assert put.status_code == 202, put.text
        assert http.get(f"/api/v1/calls/{put.json()['task_id']}", params={"wait": 60}).json() == 2
    time.sleep(0.5)  # two polls of a follower's view of the ready containers


def test_killing_either_gateway_under_load_loses_no_task(cluster: tuple[list[Server], str, bytes]) -> None:
    servers, database_url, key = cluster
    a, b = servers
    assert (_health(a.url) or {}).get("leader") is True and (_health(b.url) or {}).get("leader") is False
    _warm(a)
    _warm(b)

    # 1. The follower dies: the leader answers every request, at once.
    on_a, on_b = _Load(a).start(0), _Load(b).start(1_000_000)
    time.sleep(1.5)
    killed = _kill(b)
    time.sleep(3)
    on_a.halt()
    on_b.halt()
    after = on_a.since(killed)
    assert len(after) >= 6 and {status for _, status in after} <= {200, 202}, sorted(set(after))
    assert on_b.since(killed - 1.0), "the follower answered nothing under load before it died"

    # 2. The follower comes back on its port (its worker reconnects); then the leader dies.
    b = _serve(b.home, database_url, key, int(b.url.rsplit(":", 1)[1]), a.token)
    servers.append(b)
    b.wait_for(lambda: (_health(b.url) or {}).get("leader") is False, timeout=30)
    _warm(b)
    again_a, again_b = _Load(a).start(2_000_000), _Load(b).start(3_000_000)
    time.sleep(1.5)
    killed = _kill(a)
    b.wait_for(lambda: (_health(b.url) or {}).get("leader") is True, timeout=30)
    led_at = time.monotonic()
    b.wait_for(lambda: {k for k, s in again_b.since(led_at) if s in (200, 202)} == KINDS, timeout=90)
    again_a.halt()
    again_b.halt()
    b_after = again_b.since(killed)
    # Warm invocations keep answering from the follower's own view while no gateway leads.
    endpoint = [status for kind, status in b_after if kind == "endpoint"]
    assert endpoint and set(endpoint) == {200}, endpoint
    # Calls and puts may wait for a leader (a 503 says retry), never fail otherwise; once B leads, all answer.
    assert {status for _, status in b_after} <= {200, 202, 503}, sorted(set(b_after))

    accepted = {**on_a.accepted, **on_b.accepted, **again_a.accepted, **again_b.accepted}
    assert len(accepted) >= 20, len(accepted)
    with b.http() as http:
        for task_id, i in accepted.items():
            answer = http.get(f"/api/v1/calls/{task_id}", params={"wait": 60})
            assert answer.status_code == 200 and answer.json() == 2 * i, (task_id, answer.text)
    # Exactly once: each accepted task is one row, and every row committed (acknowledged or cut off) completed.
    rows = _query(
        database_url,
        "SELECT t.id, t.state FROM tasks t JOIN deployments d ON d.id = t.deployment_id WHERE d.name = 'double'",
    )
    states = {row["id"]: row["state"] for row in rows}
    assert len(rows) == len(states) and set(accepted) <= set(states)
    b.wait_for(lambda: not _open_tasks(database_url), timeout=60)
    assert {row["state"] for row in _query(database_url, _DOUBLE_STATES)} == {"COMPLETE"}


_DOUBLE_STATES = "SELECT t.state FROM tasks t JOIN deployments d ON d.id = t.deployment_id WHERE d.name = 'double'"


def _open_tasks(database_url: str) -> int:
    return len([row for row in _query(database_url, _DOUBLE_STATES) if row["state"] in ("PENDING", "RUNNING")])
