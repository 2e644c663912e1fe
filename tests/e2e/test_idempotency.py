"""Idempotency keys on puts and spawns: a repeated key returns the first task and never makes a second.

The store tests run on SQLite and PostgreSQL (racing gateways share one
database there); the HTTP and SDK tests use the shared server.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
import sqlalchemy
from conftest import APPS, Server
from unit.test_store_backends import row, run

from cove.exceptions import ResponseError
from cove.store import (
    IDEMPOTENCY_RETENTION_SECONDS,
    KeyClaim,
    Principal,
    Store,
    TaskWriter,
    insert_unowned_keyed,
    prune_keys,
)
from cove.store import _models as m

APP = APPS / "keyed" / "app.py"


def _task_ids(store_rows: list[Any]) -> set[str]:
    return {r.id for r in store_rows}


async def _tasks_named(store: Store, name: str) -> list[Any]:
    from sqlalchemy import select

    async with store.session() as s:
        return list((await s.scalars(select(m.Task).where(m.Task.name == name))).all())


def test_racing_claims_from_a_leader_and_followers_make_one_task_per_key(store_url: str) -> None:
    """Every gateway on the database sends each of 40 keys at once: one task per key, all agree on it."""

    async def body(store: Store, who: Principal, dep_id: str) -> None:
        writer = TaskWriter(store, owner="gw-a")
        writer.start()
        followers = [Store(store_url) for _ in range(3)]
        try:
            claims = [KeyClaim.of(who.workspace_id, "f", f"key-{n}", "json", b"{}") for n in range(40)]

            async def send(gateway: int, n: int) -> str:
                task = row(who.workspace_id, dep_id, f"t{gateway}-{n}")
                if gateway == 0:
                    holder = await writer.insert_keyed(task, claims[n])
                else:
                    holder = await insert_unowned_keyed(followers[gateway - 1], task, claims[n])
                return holder.task_id

            held = await asyncio.gather(*(send(g, n) for n in range(40) for g in range(4)))
        finally:
            await writer.close()
            for other in followers:
                await other.close()
        per_key = [set(held[n * 4 : n * 4 + 4]) for n in range(40)]
        assert all(len(ids) == 1 for ids in per_key), per_key
        assert _task_ids(await _tasks_named(store, "f")) == set().union(*per_key)

    run(store_url, body)


def test_a_key_reused_with_another_body_keeps_its_task_and_an_expired_key_is_taken_over(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        writer = TaskWriter(store, owner="gw-a")
        writer.start()
        try:
            first = KeyClaim.of(who.workspace_id, "f", "k", "json", b'{"i": 1}')
            other = KeyClaim.of(who.workspace_id, "f", "k", "json", b'{"i": 2}')
            made = await writer.insert_keyed(row(who.workspace_id, dep_id, "t1"), first)
            again = await writer.insert_keyed(row(who.workspace_id, dep_id, "t2"), other)
            assert made.task_id == again.task_id == "t1"
            assert again.request_hash == first.request_hash != other.request_hash
            # Another deployment name, or another workspace, has keys of its own.
            elsewhere = KeyClaim.of(who.workspace_id, "g", "k", "json", b'{"i": 1}')
            assert (await writer.insert_keyed(row(who.workspace_id, dep_id, "t3"), elsewhere)).task_id == "t3"
            async with store.engine.begin() as conn:
                await conn.execute(
                    sqlalchemy.update(m.IdempotencyKey).values(
                        created_at=time.time() - IDEMPOTENCY_RETENTION_SECONDS - 1
                    )
                )
            assert (await writer.insert_keyed(row(who.workspace_id, dep_id, "t4"), other)).task_id == "t4"
        finally:
            await writer.close()
        assert _task_ids(await _tasks_named(store, "f")) == {"t1", "t3", "t4"}
        assert await prune_keys(store, now=time.time() + IDEMPOTENCY_RETENTION_SECONDS + 10) == 2

    run(store_url, body)


# -- over HTTP and from the SDK ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(APP, ["keyed_queue", "keyed_function"], "keyed_app") as module:
        yield module


def _count(server: Server, name: str) -> int:
    with sqlite3.connect(f"file:{server.home / 'cove.db'}?mode=ro", uri=True, timeout=30) as db:
        (count,) = db.execute("SELECT count(*) FROM tasks WHERE name = ?", (name,)).fetchone()
    return int(count)


def test_put_with_a_key_twice_makes_one_task_and_says_the_second_was_a_replay(server: Server, keyed: Any) -> None:
    before = _count(server, "keyed-queue")
    with server.http() as http:
        first = http.post("/taskqueue/keyed-queue", json={"i": 3}, headers={"Idempotency-Key": "put-3"})
        again = http.post("/taskqueue/keyed-queue", json={"i": 3}, headers={"Idempotency-Key": "put-3"})
        assert first.status_code == again.status_code == 202, (first.text, again.text)
        assert first.json() == again.json()
        assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
        other = http.post("/taskqueue/keyed-queue", json={"i": 4}, headers={"Idempotency-Key": "put-3"})
        assert other.status_code == 422 and "different request" in other.text
        bad = http.post("/taskqueue/keyed-queue", json={"i": 4}, headers={"Idempotency-Key": "two words"})
        assert bad.status_code == 422 and "visible ASCII" in bad.text
        # The full route (taken with a query string) behaves the same.
        full = http.post("/api/v1/functions/keyed-queue/calls?wait=false&version=1", content=b"x",
                         headers={"Idempotency-Key": "spawn-full"})  # fmt: skip
        full_again = http.post("/api/v1/functions/keyed-queue/calls?wait=false&version=1", content=b"x",
                               headers={"Idempotency-Key": "spawn-full"})  # fmt: skip
        assert full.status_code == 202 and full.json() == full_again.json()
        assert full_again.headers["idempotent-replayed"] == "true"
        waiting = http.post("/api/v1/functions/keyed-function/calls", content=b"x", headers={"Idempotency-Key": "w"})
        assert waiting.status_code == 422 and "durable calls only" in waiting.text
    task = first.json()["task_id"]
    assert server.wait_for(lambda: http_state(server, task) == "COMPLETE", timeout=60)
    assert _count(server, "keyed-queue") == before + 2


def http_state(server: Server, task_id: str) -> str:
    with server.http() as http:
        return str(http.get(f"/api/v1/tasks/{task_id}").json()["state"])


def test_sdk_with_options_puts_and_spawns_once_per_key(server: Server, keyed: Any) -> None:
    before = {name: _count(server, name) for name in ("keyed-queue", "keyed-function")}
    task = keyed.keyed_queue.with_options(idempotency_key="sdk-put-1").put(5)
    again = keyed.keyed_queue.with_options(idempotency_key="sdk-put-1").put(5)
    assert task.task_id == again.task_id and task.result(timeout=60) == 25
    call = keyed.keyed_function.with_options(idempotency_key="sdk-spawn-1").spawn(6)
    assert keyed.keyed_function.with_options(idempotency_key="sdk-spawn-1").spawn(6).object_id == call.object_id
    assert call.get(timeout=60) == 36
    with pytest.raises(ResponseError) as reused:
        keyed.keyed_queue.with_options(idempotency_key="sdk-put-1").put(7)
    assert reused.value.status == 422
    with pytest.raises(ValueError, match="visible ASCII"):
        keyed.keyed_queue.with_options(idempotency_key="")
    with pytest.raises(TypeError, match="not a task queue"):
        keyed.keyed_function.with_options(idempotency_key="k").put(1)
    # Plain puts and spawns each make their own task (every one carries a key of its own).
    assert keyed.keyed_queue.put(5).task_id != keyed.keyed_queue.put(5).task_id
    assert _count(server, "keyed-queue") == before["keyed-queue"] + 3
    assert _count(server, "keyed-function") == before["keyed-function"] + 1


def test_sdk_sends_a_put_again_with_the_same_key_when_the_connection_breaks(
    server: Server, keyed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer is lost after the gateway committed the task: the resend gets that same task."""
    from cove.sdk import _calls
    from cove.sdk.client import Client

    sent: list[str] = []
    real = Client.request

    def flaky(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        answer = real(self, method, path, **kwargs)
        if path.endswith("/calls"):
            sent.append(kwargs["headers"]["Idempotency-Key"])
            if len(sent) == 1:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            if len(sent) == 2:
                raise ResponseError(0, "Unreachable", "cannot reach the Cove gateway")
        return answer

    monkeypatch.setattr(Client, "request", flaky)
    monkeypatch.setattr(_calls, "_RETRY_FIRST_DELAY", 0.01)
    before = _count(server, "keyed-queue")
    task = keyed.keyed_queue.put(8)
    assert len(sent) == 3 and len(set(sent)) == 1 and sent[0].startswith("sdk-")
    assert task.result(timeout=60) == 64
    assert _count(server, "keyed-queue") == before + 1
