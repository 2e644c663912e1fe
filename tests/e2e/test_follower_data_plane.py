"""A follower serves endpoint invocations itself: relayed straight to ready containers, never through the leader.

Real processes: a throwaway PostgreSQL, a leader and a follower (``cove
server --no-worker``, homes of their own, one ``COVE_SECRET_KEY``) and one
``cove worker --advertise-host 127.0.0.1`` whose containers listen on TCP and
which talks to the follower (so it outlives the leader). The leader counts
the requests forwarded to it (``cove_forwarded_requests_total``), which is how
the tests see that warm requests through the follower never reach it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import APPS, Server
from cryptography.fernet import Fernet
from pg_cluster import PgCluster

from .test_separate_homes import _health, _start

APP = APPS / "follower" / "app.py"

pytestmark = pytest.mark.slow


def _forwarded_invocations(leader: Server) -> float:
    with leader.http() as http:
        text = http.get("/metrics").text
    found = re.search(r'^cove_forwarded_requests_total\{route="endpoint"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _live(server: Server, deployment: str) -> list[dict[str, Any]]:
    return [c for c in server.containers(deployment) if c["state"] in ("ready", "listening")]


def _invoke(http: httpx.Client, name: str, i: int) -> httpx.Response:
    return http.post(f"/endpoint/{name}", json={"i": i})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("follower")
    database_url = postgres.url(postgres.create_database())
    key = Fernet.generate_key()
    leader = _start(root / "leader", database_url, key, None, "--no-worker")
    follower = _start(root / "follower", database_url, key, leader.token, "--no-worker")
    home = root / "worker"
    with (root / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cove", "worker", "--gateway", follower.url, "--token", leader.token,
             "--name", "w1", "--cpu", "4000m", "--memory", "8Gi", "--home", str(home),
             "--advertise-host", "127.0.0.1"],
            env={**follower.env, "COVE_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        leader.wait_for(lambda: (_health(leader.url) or {}).get("workers") == 1, timeout=30)
        leader.deploy(f"{APP}:echo")
        leader.deploy(f"{APP}:slow")
        yield leader, follower
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        follower.stop()
        leader.stop()


def _warm(follower: Server, name: str) -> None:
    """A first (cold) request goes to the leader, which starts a container; then the follower sees it ready."""
    with follower.http() as http:
        assert _invoke(http, name, -1).status_code == 200
    follower.wait_for(lambda: [c for c in _live(follower, name) if c["state"] == "ready"], timeout=60)
    time.sleep(0.5)  # two polls of the follower's view


def test_warm_requests_through_the_follower_never_reach_the_leader(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    assert (_health(leader.url) or {}).get("leader") is True and (_health(follower.url) or {}).get("leader") is False
    _warm(follower, "echo")
    before = _forwarded_invocations(leader)
    with follower.http() as http:
        answers = [_invoke(http, "echo", i) for i in range(100)]
    assert [a.status_code for a in answers] == [200] * 100
    assert [a.json()["i"] for a in answers] == list(range(100))
    assert all(a.headers["x-cove-container"].startswith("ctr-") for a in answers)
    assert _forwarded_invocations(leader) == before


def test_error_answers_are_the_same_on_the_follower(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("/endpoint/missing", {}, b"{}"),  # 404
        ("/endpoint/echo/v99", {}, b"{}"),  # 404, a version that does not exist
        ("/endpoint/echo/x/y", {}, b"{}"),  # 404, a malformed path
        ("/endpoint/echo", {"Authorization": "Bearer nope"}, b"{}"),  # 401
    ]
    for path, headers, body in cases:
        answers = []
        for server in (leader, follower):
            with server.http() as http:
                answers.append(http.post(path, content=body, headers=headers))
        (a, b) = answers
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        assert a.status_code in (401, 404), a.text
    with httpx.Client(base_url=follower.url) as anonymous:  # no token: the endpoint needs one (authorized)
        assert _invoke(anonymous, "echo", 0).status_code == 401


def test_a_burst_through_the_follower_scales_up_without_the_leader_relaying(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "slow")
    assert len(_live(leader, "slow")) == 1
    before = _forwarded_invocations(leader)
    results: list[httpx.Response] = []

    def call(i: int) -> None:
        with follower.http() as http:
            for j in range(6):
                results.append(_invoke(http, "slow", i * 100 + j))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 36
    # The leader's autoscaler saw the follower's demand (six waiting or running) and started up to max_containers.
    assert len(_live(leader, "slow")) == 3
    assert len({r.json()["container"] for r in results}) >= 2
    assert _forwarded_invocations(leader) == before


def test_warm_requests_keep_answering_when_the_leader_dies(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "echo")
    answers: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        with follower.http() as http:
            i = 0
            while not stop.is_set():
                answers.append(_invoke(http, "echo", i).status_code)
                i += 1

    thread = threading.Thread(target=keep_calling)
    thread.start()
    time.sleep(0.5)
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    killed_at = len(answers)
    time.sleep(4)  # the lease lapses after 6 s: until then the follower follows a dead leader
    stop.set()
    thread.join()
    assert (_health(follower.url) or {}).get("leader") is False  # still following: no takeover helped
    after_kill = answers[killed_at:]
    assert len(after_kill) > 50 and set(after_kill) == {200}, sorted(set(after_kill))
