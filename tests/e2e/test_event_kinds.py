"""The event kinds a call alone does not show: the scheduler lease, a worker cordoned and active again, and a
task's failed attempts, retried and then failed for good — each with its reason and numbers."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, start_server

APP = """
from cove import TaskPolicy, function

@function(task_policy=TaskPolicy(max_retries=1, retry_delay_seconds=0.1))
def evk_fail(x: int) -> int:
    raise ValueError(f"bad input {x}")
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("evk") / "cove", None, None)
    yield srv
    srv.stop()


def _events(server: Server, **params: Any) -> list[dict[str, Any]]:
    with server.http() as http:
        reply = http.get("/api/v1/events", params={"limit": 1000, **params})
    assert reply.status_code == 200, reply.text
    events: list[dict[str, Any]] = reply.json()["events"]
    return events


def test_the_lease_and_a_workers_cordon_are_cluster_events(fresh: Server) -> None:
    server = fresh
    lease = [e for e in _events(server) if e["kind"] == "lease"]
    assert lease and lease[0]["deployment"] is None and lease[0]["inputs"]["gateway"]
    assert "holds the scheduler lease" in lease[0]["reason"]

    server.cli("worker", "cordon", "local")
    server.cli("worker", "uncordon", "local")
    drains = server.wait_for(lambda: [e for e in _events(server) if e["kind"] == "drain"][-2:], timeout=5)
    assert [e["reason"] for e in drains] == [
        "worker local is cordoned now (was active)",
        "worker local is active now (was cordoned)",
    ]
    assert all(e["inputs"]["worker"] == "local" and e["deployment"] is None for e in drains)
    member = server.user_token("evk-other")
    with server.http(member) as http:  # a member sees no cluster event
        theirs = http.get("/api/v1/events", params={"limit": 1000}).json()["events"]
    assert not [e for e in theirs if e["kind"] in ("lease", "drain", "worker")]


def test_a_tasks_failed_attempts_are_retry_events(fresh: Server, tmp_path: Path) -> None:
    server = fresh
    (tmp_path / "app.py").write_text(APP)
    server.deploy(f"{tmp_path / 'app.py'}:evk_fail")
    with server.http() as http:
        reply = http.post(
            "/api/v1/functions/evk-fail/calls",
            content=pickle.dumps(((7,), {})),
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
    assert reply.status_code == 200, reply.text  # the call ended: its outcome is the raised error

    def retries() -> list[dict[str, Any]]:
        return [e for e in _events(server, deployment="evk-fail") if e["kind"] == "retry"]

    first, last = server.wait_for(lambda: len(retries()) >= 2 and retries(), timeout=5)
    assert first["inputs"]["task"] == last["inputs"]["task"]
    assert first["inputs"]["retry"] is True and first["inputs"]["attempt"] == 1
    assert "attempt 1 failed (ValueError: bad input 7); retried in" in first["reason"]
    assert 0.0 < first["inputs"]["delay_seconds"] < 1.0
    assert last["inputs"]["retry"] is False and "failed for good after 2 attempt(s)" in last["reason"]
    assert last["inputs"]["error_type"] == "ValueError" and last["inputs"]["container"]
