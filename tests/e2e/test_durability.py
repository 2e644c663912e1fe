"""A task accepted with a 2xx is never lost: SIGKILL containers, the worker, or the gateway itself.

These tests submit 2,000 tasks, kill processes with SIGKILL at random moments
while the tasks run, and then read the store directly: every task must be
COMPLETE exactly once, with the right result.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import APPS, Server, start_server

APP = APPS / "durable" / "app.py"
TOTAL = 2000


def _submit(server: Server, total: int = TOTAL, first: int = 0) -> dict[str, int]:
    expected: dict[str, int] = {}
    with server.http() as http:
        for i in range(first, first + total):
            response = http.post("/taskqueue/durable", json={"i": i})
            assert response.status_code == 202, response.text
            expected[response.json()["task_id"]] = i
    return expected


def _rows(home: Path) -> list[tuple[str, str, bytes | None, int]]:
    with sqlite3.connect(f"file:{home / 'cove.db'}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT id, state, result, attempt FROM tasks WHERE name = 'durable'").fetchall()


def _complete(home: Path) -> int:
    return sum(1 for _, state, _, _ in _rows(home) if state == "COMPLETE")


def _processes() -> list[tuple[int, bytes, bytes]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            found.append((int(entry.name), (entry / "cmdline").read_bytes(), (entry / "environ").read_bytes()))
        except OSError:
            continue
    return found


def _worker_pids(home: Path) -> list[int]:
    return [pid for pid, cmdline, _ in _processes() if b"worker" in cmdline and str(home).encode() in cmdline]


def _container_pids(server: Server) -> list[int]:
    """Runner processes of this server's containers, whichever engine runs them."""
    with server.http() as http:
        ids = {c["id"] for c in http.get("/api/v1/containers").json()}
    marks = {f"COVE_CONTAINER_ID={cid}".encode() for cid in ids}
    return [
        pid
        for pid, cmdline, environ in _processes()
        if b"cove.runner" in cmdline and any(mark in environ.split(b"\0") for mark in marks)
    ]


def _assert_all_complete_once(home: Path, expected: dict[str, int]) -> None:
    rows = _rows(home)
    assert len(rows) == len(expected)
    assert {row[0] for row in rows} == set(expected)
    states = {state for _, state, _, _ in rows}
    assert states == {"COMPLETE"}, states
    for task_id, _, result, attempt in rows:
        assert result is not None and json.loads(result) == expected[task_id] ** 2
        assert attempt >= 1


def _wait_done(home: Path, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _complete(home) == total:
            return
        time.sleep(0.5)
    raise AssertionError(f"only {_complete(home)} of {total} tasks completed within {timeout} s")


@pytest.mark.slow
def test_no_task_lost_when_containers_and_worker_are_killed(fresh_server: Server) -> None:
    fresh_server.deploy(f"{APP}:durable")
    expected = _submit(fresh_server)
    rng = random.Random(20261122)
    kills = {"container": 0, "worker": 0}
    deadline = time.monotonic() + 240
    while (kills["container"] < 8 or kills["worker"] < 2) and time.monotonic() < deadline:
        if _complete(fresh_server.home) >= len(expected) * 0.9:
            if kills["container"] >= 3 and kills["worker"] >= 1:
                break
            # A slow machine drained the queue before the kills landed: top it up so that
            # the kills still to come hit tasks in flight rather than an idle container.
            expected |= _submit(fresh_server, total=500, first=len(expected))
        time.sleep(rng.uniform(0.1, 0.5))
        if rng.random() < 0.25 and kills["worker"] < 2:
            targets = _worker_pids(fresh_server.home)
            kind = "worker"
        else:
            targets = _container_pids(fresh_server)
            kind = "container"
        if targets:
            os.kill(rng.choice(targets), signal.SIGKILL)
            kills[kind] += 1
    _wait_done(fresh_server.home, len(expected), timeout=240)
    assert kills["container"] >= 3 and kills["worker"] >= 1, kills
    _assert_all_complete_once(fresh_server.home, expected)
    retried = sum(1 for _, _, _, attempt in _rows(fresh_server.home) if attempt > 1)
    assert retried > 0  # the kills really hit tasks in flight, and they were retried


@pytest.mark.slow
def test_no_task_lost_when_the_gateway_is_killed(fresh_server: Server) -> None:
    fresh_server.deploy(f"{APP}:durable")
    expected = _submit(fresh_server)
    deadline = time.monotonic() + 60
    while _complete(fresh_server.home) < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    done_before = _complete(fresh_server.home)
    assert done_before < TOTAL, "the gateway must die while tasks are still open"
    fresh_server.proc.send_signal(signal.SIGKILL)
    fresh_server.proc.wait(timeout=10)
    port = int(fresh_server.url.rsplit(":", 1)[1])
    restarted = start_server(fresh_server.home, port)
    try:
        _wait_done(restarted.home, TOTAL, timeout=240)
        _assert_all_complete_once(restarted.home, expected)
    finally:
        restarted.stop()
