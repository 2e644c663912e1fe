"""A worker token speaks for one worker only.

Orders carry decrypted secrets, so one worker's token must never read
another's orders, heartbeat or report events in its place, push log lines
for its containers, or take over its identity. Worker identity is the
persistent id a worker keeps in its home; the name is only shown, so two
workers named alike are still two workers.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, start_server

WARM_APP = APPS / "warm" / "app.py"


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("tokens") / "cove")
    yield server
    server.stop()


def _worker_token(server: Server, name: str) -> str:
    with server.http() as http:
        reply = http.post("/api/v1/tokens", json={"name": name, "role": "worker"})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["token"])


def _identity() -> str:
    return "wid-" + uuid.uuid4().hex


def _register(server: Server, token: str, identity: str, name: str = "node") -> httpx.Response:
    # So small that nothing is ever placed on it: these workers exist only to be spoken for.
    body = {"name": name, "identity": identity, "cpu_millis": 1, "memory_mib": 1}
    with server.http(token) as http:
        return http.post("/api/v1/workers/register", json=body)


def _live(server: Server) -> dict[str, dict[str, Any]]:
    with server.http() as http:
        return {w["id"]: w for w in http.get("/api/v1/workers").json() if w["state"] != "lost"}


def _running(server: Server, deployment: str) -> list[dict[str, Any]]:
    return [c for c in server.containers(deployment) if c["state"] in ("listening", "ready")]


def test_a_worker_token_cannot_speak_for_another_worker(bound: Server) -> None:
    token_a, token_b = _worker_token(bound, "node-a"), _worker_token(bound, "node-b")
    identity_a, identity_b = _identity(), _identity()
    reply_a = _register(bound, token_a, identity_a)
    reply_b = _register(bound, token_b, identity_b)
    assert reply_a.status_code == 200 and reply_b.status_code == 200, (reply_a.text, reply_b.text)
    a, b = reply_a.json()["worker_id"], reply_b.json()["worker_id"]
    assert {a, b} <= set(_live(bound)), "two workers named alike are two workers: neither replaces the other"

    with bound.http(token_b) as http:
        orders = http.get(f"/api/v1/workers/{a}/orders", params={"wait": 0})
        beat = http.post(f"/api/v1/workers/{a}/heartbeat", json={"containers": []})
        events = http.post(f"/api/v1/workers/{a}/events", json={"events": []})
    assert (orders.status_code, beat.status_code, events.status_code) == (403, 403, 403), orders.text

    with bound.http(token_a) as http:
        assert http.get(f"/api/v1/workers/{a}/orders", params={"wait": 0}).status_code == 200
        assert http.post(f"/api/v1/workers/{a}/heartbeat", json={"containers": []}).status_code == 200
    with bound.http() as http:  # an admin token pulls no other worker's orders either
        assert http.get(f"/api/v1/workers/{a}/orders", params={"wait": 0}).status_code == 403


def test_a_worker_token_is_bound_to_its_first_identity_and_none_takes_another_over(bound: Server) -> None:
    token_a, token_b = _worker_token(bound, "bind-a"), _worker_token(bound, "bind-b")
    identity_a = _identity()
    first = _register(bound, token_a, identity_a, name="shared-name")
    assert first.status_code == 200, first.text
    a = first.json()["worker_id"]

    takeover = _register(bound, token_b, identity_a, name="shared-name")
    assert takeover.status_code == 403, takeover.text
    assert a in _live(bound), "a refused takeover must leave the worker in place"

    elsewhere = _register(bound, token_a, _identity(), name="other")
    assert elsewhere.status_code == 403 and "belongs to worker" in elsewhere.text

    again = _register(bound, token_a, identity_a, name="shared-name")  # the same worker, restarted
    assert again.status_code == 200, again.text
    live = _live(bound)
    assert again.json()["worker_id"] in live and a not in live

    with bound.http() as http:  # operator actions stay with admin tokens
        assert http.post(f"/api/v1/workers/{again.json()['worker_id']}/cordon").status_code == 200


def test_container_logs_only_from_the_worker_that_runs_the_container(bound: Server) -> None:
    bound.deploy(f"{WARM_APP}:warm")
    container = bound.wait_for(lambda: _running(bound, "warm"), timeout=120)[0]
    token_b = _worker_token(bound, "logs-b")
    assert _register(bound, token_b, _identity()).status_code == 200
    line = {"lines": [{"ts": 1.0, "stream": "stdout", "text": "forged line"}]}
    with bound.http(token_b) as http:
        assert http.post(f"/api/v1/containers/{container['id']}/logs", json=line).status_code == 403
    with bound.http() as http:  # nor an admin token: the local worker runs it, with a token of its own
        assert http.post(f"/api/v1/containers/{container['id']}/logs", json=line).status_code == 403
    assert "forged line" not in bound.cli("logs", container["id"]).stdout


def test_the_local_worker_gets_a_token_bound_to_it(bound: Server) -> None:
    identity = (bound.home / "workers" / "local" / "worker-id").read_text().strip()
    with sqlite3.connect(bound.home / "cove.db") as db:
        rows = db.execute(
            "SELECT worker_identity FROM tokens WHERE name = 'local-worker' AND revoked_at IS NULL"
        ).fetchall()
    assert rows == [(identity,)]
