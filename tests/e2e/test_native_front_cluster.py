"""The native front beyond one gateway: on a follower, and on each process of ``cove server --processes 2``.

A follower's front is programmed from the follower's own mirror of the ready
containers and sends its load to the leader inside the follower's demand
report. The follower data plane's tests run here again with the follower
behind its front (warm calls never reach the leader, the same error answers,
a burst scales up, a cold burst starts as many containers, the leader's death
is survived), then what only the front does: it serves a kept-alive client's
warm calls on the follower, and a burst it queues makes the leader scale.

With ``--processes 2`` each gateway process runs its own front on its share
of the port: connections reach both processes through their fronts, and a
killed process takes its front with it (no front is left holding a share of
the port that nobody answers) and comes back with a new one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server
from cryptography.fernet import Fernet
from pg_cluster import PgCluster

import e2e.test_follower_data_plane as plain
from e2e.test_follower_data_plane import (  # noqa: F401  (collected again here, the follower behind its front)
    APP,
    _burst,
    _forwarded_invocations,
    _invoke,
    _live,
    _warm,
    follower_cluster,
    test_a_burst_through_the_follower_scales_up_without_the_leader_relaying,
    test_a_cold_burst_on_the_follower_starts_as_many_containers_as_on_the_leader,
    test_error_answers_are_the_same_on_the_follower,
    test_warm_requests_through_the_follower_never_reach_the_leader,
)
from e2e.test_separate_homes import _launch
from e2e.test_server_processes import _children, _leader_flags

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cc") is None, reason="cove-front is built with cc")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster) -> Iterator[tuple[Server, Server]]:
    with follower_cluster(tmp_path_factory.mktemp("front-follower"), postgres, "--native-front") as (leader, follower):
        leader.deploy(f"{APP}:queued")
        yield leader, follower


def _front_count(server: Server) -> int:
    with server.http() as http:
        text = http.get("/metrics").text  # a scrape takes the front's counts first
    found = re.search(r'^cove_native_front_invocations_total\{workspace="default"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def _fronts(pid: int) -> list[int]:
    """The cove-front processes under ``pid`` (its children and theirs)."""
    found = []
    for child in _children(pid):
        for grandchild in _children(child) | {child}:
            try:
                if Path(f"/proc/{grandchild}/comm").read_text().strip().startswith("cove-front"):
                    found.append(grandchild)
            except OSError:
                continue
    return found


def test_the_followers_front_serves_kept_alive_warm_calls(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "echo")
    before_leader = _forwarded_invocations(leader)
    with follower.http() as http:
        assert _invoke(http, "echo", -1).status_code == 200  # warm through the gateway: it programs the front
        time.sleep(0.3)  # a tick of the front's tables: the container and its room
        before = _front_count(follower)
        answers = [_invoke(http, "echo", i) for i in range(20)]
    served = _front_count(follower) - before
    assert [a.json()["i"] for a in answers] == list(range(20))
    assert all(a.headers["x-cove-container"].startswith("ctr-") for a in answers)
    assert served == 20, f"the follower's front served {served} of 20 warm calls"
    assert _forwarded_invocations(leader) == before_leader
    assert _front_count(leader) == 0  # the leader runs no front: nothing of this reached it


def test_a_burst_queued_in_the_followers_front_scales_up_on_the_leader(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "queued")
    with follower.http() as http:
        assert _invoke(http, "queued", -1).status_code == 200  # programs the front
    time.sleep(0.3)
    assert len(_live(leader, "queued")) == 1
    before, before_leader = _front_count(follower), _forwarded_invocations(leader)
    results = _burst(follower, "queued", 6, calls=4)
    assert [r.status_code for r in results] == [200] * 24
    # One container with room for one: the front queued the rest and said so in the follower's report, and
    # the leader's autoscaler started containers up to max_containers for them.
    assert len(_live(leader, "queued")) == 3
    assert len({r.json()["container"] for r in results}) >= 2
    assert _front_count(follower) - before > 0
    assert _forwarded_invocations(leader) == before_leader


# Last: it kills the leader.
test_warm_requests_keep_answering_when_the_leader_dies = plain.test_warm_requests_keep_answering_when_the_leader_dies


def test_each_process_runs_a_front_and_a_killed_one_takes_its_front_along(tmp_path: Path, postgres: PgCluster) -> None:
    database_url = postgres.url(postgres.create_database())
    home = tmp_path / "home"
    proc, url, _ = _launch(
        home, database_url, Fernet.generate_key(), "--processes", "2", "--no-worker", "--native-front"
    )
    try:
        deadline = time.monotonic() + 90
        while not (set(_leader_flags(url, 10)) >= {True, False}):
            assert proc.poll() is None and time.monotonic() < deadline, (home / "test-server.log").read_text()[-3000:]
            time.sleep(0.2)
        gateways = _children(proc.pid)
        assert len(gateways) == 2 and len(_fronts(proc.pid)) == 2  # a front per process, holding its share

        victim = gateways.pop()
        (victims_front,) = [pid for pid in _fronts(proc.pid) if pid in _children(victim)]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.3)
        answers = [httpx.get(f"{url}/healthz", timeout=5).status_code for _ in range(30)]
        assert answers == [200] * 30  # its front ended with it: every connection reaches the survivor's
        assert not Path(f"/proc/{victims_front}").exists() or _zombie(victims_front)

        def restarted() -> bool:
            now = _children(proc.pid)
            return len(now) == 2 and victim not in now and len(_fronts(proc.pid)) == 2

        deadline = time.monotonic() + 30
        while not restarted():
            assert time.monotonic() < deadline, "the killed process did not come back with a front"
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while set(_leader_flags(url, 20)) != {True, False}:
            assert time.monotonic() < deadline, "connections do not reach both processes again"
            time.sleep(0.2)
        fronts = _fronts(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in fronts)  # each ended with its process


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
