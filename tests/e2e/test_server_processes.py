"""``cove server --processes 2``: two gateway processes on one port, spread by the kernel, each restarted if it dies.

Real processes: a throwaway PostgreSQL and one ``cove server --processes 2
--no-worker``. One process leads and the other follows, so ``/healthz`` on the
shared port says ``leader: true`` or ``false`` depending on which one took the
connection: both answers seen means connections reach both processes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server
from cryptography.fernet import Fernet
from pg_cluster import PgCluster

from .test_separate_homes import _health, _launch

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def _leader_flags(url: str, count: int) -> list[bool | None]:
    """``leader`` of /healthz over ``count`` new connections (None: no answer)."""
    return [(_health(url) or {}).get("leader") for _ in range(count)]


@pytest.fixture
def server(tmp_path: Path, postgres: PgCluster) -> Iterator[Server]:
    database_url = postgres.url(postgres.create_database())
    proc, url, env = _launch(tmp_path / "home", database_url, Fernet.generate_key(), "--processes", "2", "--no-worker")
    deadline = time.monotonic() + 90
    while not (set(_leader_flags(url, 10)) >= {True, False}):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "home" / "test-server.log").read_text()[-3000:])
        time.sleep(0.2)
    token = (tmp_path / "home" / "admin-token").read_text().strip()
    try:
        yield Server(url=url, home=tmp_path / "home", token=token, proc=proc, env=env)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_requests_spread_over_both_processes_and_a_killed_one_comes_back(server: Server) -> None:
    flags = _leader_flags(server.url, 40)
    assert None not in flags and set(flags) == {True, False}  # both processes answer on the one port
    with server.http() as http:
        assert http.get("/api/v1/deployments").status_code == 200
    gateways = _children(server.proc.pid)
    assert len(gateways) == 2, gateways

    victim = gateways.pop()
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.3)
    answers = [httpx.get(f"{server.url}/healthz", timeout=5).status_code for _ in range(30)]
    assert answers == [200] * 30  # the survivor takes every connection meanwhile

    def restarted() -> bool:
        now = _children(server.proc.pid)
        return len(now) == 2 and victim not in now

    server.wait_for(restarted, timeout=30)
    # Once the lease settles (the killed one may have led: it lapses within seconds), one leads and one follows.
    server.wait_for(lambda: set(_leader_flags(server.url, 20)) == {True, False}, timeout=30)
    assert server.proc.poll() is None


def test_processes_need_postgresql(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "sqlite"
    env = {**os.environ, "COVE_HOME": str(home)}
    env.pop("COVE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "cove", "server", "--processes", "2", "--home", str(home), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "needs PostgreSQL" in done.stdout and "COVE_DATABASE_URL" in done.stdout, done.stdout + done.stderr
