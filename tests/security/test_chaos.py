"""Chaos: SIGKILL a container, the worker and the gateway during a 2,000-task drain, and count what ran.

The delivery guarantee under test (README, task queues): no accepted task is
lost; a task whose result was recorded before a crash never runs again; a
task whose attempt was in flight at a crash may run twice (at-least-once),
but its result is recorded once. Each task appends its input to a ledger in a
volume, so side effects are counted, not only rows. And with idempotency
keys, puts sent again after a gateway crash make no second task.

Slow (a couple of minutes): ``make test-chaos`` runs these; plain ``make test`` skips them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pickle
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, start_server
from e2e.test_durability import _container_pids, _worker_pids

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

APP = APPS / "chaos" / "app.py"
TOTAL = 2000
MAX_ATTEMPTS = 26  # the app's TaskPolicy(max_retries=25)
SDK_FIRST = 100_000  # inputs of the SDK's puts; HTTP puts use 0 .. burst - 1
SETTLE_SECONDS = 1.0  # after a kill, attempts already sent finish (or die) before the ledger is read


@dataclasses.dataclass
class Crash:
    """One SIGKILL and the tasks it could repeat.

    ``recorded``: results in the store just before the kill (these must never run again);
    ``running``: tasks RUNNING in the store just before it; ``ran``: inputs in the ledger once
    the attempts already sent had settled. In flight at the crash: running or ran, not recorded.
    """

    what: str
    recorded: dict[str, tuple[float, bytes]]
    running: set[str]
    ran: set[int]

    def in_flight(self, expected: dict[str, int]) -> set[int]:
        return ({expected[t] for t in self.running} | self.ran) - {expected[t] for t in self.recorded}


def _rows(home: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(f"file:{home / 'cove.db'}?mode=ro", uri=True, timeout=30) as db:
        db.row_factory = sqlite3.Row
        found = db.execute(
            "SELECT id, state, args, result, attempt, attempts, finished_at FROM tasks WHERE name = 'chaos'"
        ).fetchall()
    return {row["id"]: dict(row) for row in found}


def _recorded(home: Path) -> dict[str, tuple[float, bytes]]:
    return {tid: (r["finished_at"], r["result"]) for tid, r in _rows(home).items() if r["state"] == "COMPLETE"}


def _ledger(home: Path) -> collections.Counter[int]:
    """How many times each input ran: one ledger line per run."""
    runs: collections.Counter[int] = collections.Counter()
    for path in (home / "volumes").glob("*/chaos-ledger/runs.log"):
        runs.update(int(line) for line in path.read_text().split())
    return runs


def _wait_for_complete(home: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(_recorded(home)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(_recorded(home))} of {count} tasks completed within {timeout} s")
        time.sleep(0.1)


def _crash(home: Path, what: str, kill: Callable[[], None], *, quiesce: bool = False) -> Crash:
    """Kill, then read which inputs had run: after ``SETTLE_SECONDS``, or with ``quiesce`` once the
    ledger stops growing (nothing new is sent while the gateway is down, so that is exact)."""
    rows = _rows(home)
    recorded = {t: (r["finished_at"], r["result"]) for t, r in rows.items() if r["state"] == "COMPLETE"}
    running = {t for t, r in rows.items() if r["state"] == "RUNNING"}
    kill()
    ran = _ledger(home)
    time.sleep(SETTLE_SECONDS)
    while quiesce and (now := _ledger(home)) != ran:
        ran = now
        time.sleep(SETTLE_SECONDS)
    return Crash(what, recorded, running, set(_ledger(home)))


def _kill_one(pids: list[int]) -> None:
    assert pids, "nothing to kill"
    os.kill(pids[0], signal.SIGKILL)


def _kill_gateway(server: Server) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _check_final_states(rows: dict[str, dict[str, Any]], expected: dict[str, int]) -> list[str]:
    """0 lost: every task ends COMPLETE with its result, or FAILED with every attempt recorded."""
    assert set(rows) == set(expected), "tasks appeared or vanished"
    failed = []
    for task_id, row in rows.items():
        if row["state"] == "FAILED":
            assert len(json.loads(row["attempts"])) == MAX_ATTEMPTS, row
            failed.append(task_id)
        else:
            assert row["state"] == "COMPLETE", row
            assert json.loads(row["result"]) == expected[task_id] ** 2
    return failed


def test_sigkill_of_container_worker_and_gateway_loses_nothing_and_repeats_only_attempts_in_flight(
    fresh_server: Server,
) -> None:
    started = time.monotonic()
    fresh_server.deploy(f"{APP}:chaos")
    expected: dict[str, int] = {}
    with fresh_server.http() as http:
        for i in range(TOTAL):
            response = http.post("/taskqueue/chaos", json={"i": i})
            assert response.status_code == 202, response.text
            expected[response.json()["task_id"]] = i
    home = fresh_server.home
    crashes = []
    _wait_for_complete(home, TOTAL // 10, timeout=120)
    crashes.append(_crash(home, "container", lambda: _kill_one(_container_pids(fresh_server))))
    _wait_for_complete(home, TOTAL * 3 // 10, timeout=120)
    crashes.append(_crash(home, "worker", lambda: _kill_one(_worker_pids(home))))
    _wait_for_complete(home, TOTAL * 5 // 10, timeout=120)
    crashes.append(_crash(home, "gateway", lambda: _kill_gateway(fresh_server), quiesce=True))
    assert len(crashes[-1].recorded) < TOTAL, "the gateway must die while tasks are still open"
    restarted = start_server(home, _port(fresh_server))
    try:
        _wait_for_complete(home, TOTAL, timeout=240)
    finally:
        restarted.stop()

    rows = _rows(home)
    failed = _check_final_states(rows, expected)
    runs = _ledger(home)
    lost = [i for i in expected.values() if runs[i] == 0]
    twice = {i for i, count in runs.items() if count > 1}
    in_flight = set().union(*(crash.in_flight(expected) for crash in crashes))
    print(
        f"\nchaos: {TOTAL} tasks, kills {[c.what for c in crashes]}, lost {len(lost)}, failed {len(failed)}, "
        f"ran twice {len(twice)} (in flight at a crash {len(in_flight)}), "
        f"retried {sum(1 for r in rows.values() if r['attempt'] > 1)}, wall {time.monotonic() - started:.0f} s"
    )
    assert not lost
    for crash in crashes:
        # Recorded before the crash: ran exactly once, and its result was never written again.
        assert all(runs[expected[t]] == 1 for t in crash.recorded), crash.what
        assert all((rows[t]["finished_at"], rows[t]["result"]) == kept for t, kept in crash.recorded.items())
    assert twice <= in_flight, f"ran twice without being in flight at a crash: {sorted(twice - in_flight)[:20]}"


def _input_of(row: dict[str, Any]) -> int:
    """A task's input: JSON keyword arguments from an HTTP put, or the SDK's pickled (args, kwargs)."""
    if row["args"][:1] == b"{":
        return int(json.loads(row["args"])["i"])
    args, _ = pickle.loads(row["args"])
    return int(args[0])


def _put_keyed(server: Server, inputs: range, answered: dict[int, str]) -> None:
    """Put each input under its own key until the gateway stops answering."""
    with server.http() as http:
        for i in inputs:
            try:
                response = http.post("/taskqueue/chaos", json={"i": i}, headers={"Idempotency-Key": f"burst-{i}"})
            except httpx.TransportError:
                return
            assert response.status_code == 202, response.text
            answered[i] = response.json()["task_id"]


def _put_from_sdk(queue: Any, first: int, task_ids: list[str], stop: threading.Event) -> None:
    """``queue.put(i)`` for i = first, first + 1, ... until ``stop``; each put carries the SDK's own key."""
    i = first
    while not stop.is_set():
        task_ids.append(queue.put(i).task_id)
        i += 1
        time.sleep(0.005)


def test_puts_sent_again_after_a_gateway_crash_make_one_task_per_key(fresh_server: Server) -> None:
    """HTTP puts with keys and SDK puts (keys of their own) run into a gateway SIGKILL and are sent again."""
    burst = 800
    with fresh_server.deployed_app(APP, ["chaos"], "chaos_app") as app:
        answered: dict[int, str] = {}
        senders = [
            threading.Thread(target=_put_keyed, args=(fresh_server, range(n, burst, 4), answered)) for n in range(4)
        ]
        sdk_ids: list[str] = []
        stop_sdk = threading.Event()
        sdk = threading.Thread(target=_put_from_sdk, args=(app.chaos, SDK_FIRST, sdk_ids, stop_sdk))
        for thread in [*senders, sdk]:
            thread.start()
        fresh_server.wait_for(lambda: len(answered) >= burst // 4, timeout=60, interval=0.01)
        _kill_gateway(fresh_server)
        sdk_before_kill = len(sdk_ids)
        for thread in senders:
            thread.join(timeout=60)
        assert len(answered) < burst, "the gateway must die mid-burst"
        restarted = start_server(fresh_server.home, _port(fresh_server))
        try:
            replayed = 0
            with restarted.http() as http:
                for i in range(burst):
                    response = http.post("/taskqueue/chaos", json={"i": i}, headers={"Idempotency-Key": f"burst-{i}"})
                    assert response.status_code == 202, response.text
                    if i in answered:
                        assert response.json()["task_id"] == answered[i]
                        assert response.headers["idempotent-replayed"] == "true"
                    replayed += response.headers.get("idempotent-replayed") == "true"
            stop_sdk.set()
            sdk.join(timeout=150)
            assert not sdk.is_alive()
        finally:
            stop_sdk.set()
            restarted.stop()
    # The SDK's put that met the dead gateway was sent again until the new one answered.
    assert len(sdk_ids) > sdk_before_kill + 1
    per_input = collections.Counter(_input_of(row) for row in _rows(fresh_server.home).values())
    print(
        f"\nkeyed burst: {burst} keys, {len(answered)} answered before the kill, {replayed} replayed after it; "
        f"SDK puts {len(sdk_ids)} ({sdk_before_kill} before the kill); "
        f"tasks per input {sorted(set(per_input.values()))}"
    )
    assert set(per_input) == set(range(burst)) | set(range(SDK_FIRST, SDK_FIRST + len(sdk_ids)))
    assert set(per_input.values()) == {1}
