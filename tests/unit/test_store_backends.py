"""The store on SQLite and on PostgreSQL: same migrations, same answers, and the cluster primitives.

Every test here runs on both backends (``store_url``), against a real database:
task claims that never hand one task to two gateways, the scheduler lease,
and (PostgreSQL) the NOTIFY wake-ups between gateways.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cove.store import (
    DONE_TASKS_CHANNEL,
    NEW_TASKS_CHANNEL,
    Principal,
    Store,
    TaskWriter,
    claim_tasks,
    get_task,
    insert_unowned,
)
from cove.store._leases import read_lease, release_lease, take_lease
from cove.store._notify import Listener, TaskWatch


async def deploy(store: Store, who: Principal, name: str, function: str = "f", **config: Any) -> Any:
    """Register a version of deployment ``name``: (row, created)."""
    return await store.create_deployment(
        who, name=name, app="a", kind="function", module="m", function=function, image_id="img",
        code_hash="c" * 64, config=config,
    )  # fmt: skip


def run(store_url: str, body: Callable[[Store, Principal, str], Awaitable[Any]]) -> Any:
    """Migrate a fresh store, make a workspace and a deployment, run ``body``, close the store."""

    async def main() -> Any:
        store = Store(store_url)
        await store.migrate()
        try:
            ws = await store.ensure_workspace("default")
            who = Principal("tok-test", ws.id, ws.name, "admin")
            await store.put_image("img", {}, status="ready")
            await store.add_code("c" * 64, 1, who)
            dep, _ = await deploy(store, who, "f")
            return await body(store, who, dep.id)
        finally:
            await store.close()

    return asyncio.run(main())


def row(workspace_id: str, deployment_id: str, task_id: str, at: float = 0.0) -> dict[str, Any]:
    return {
        "id": task_id, "workspace_id": workspace_id, "deployment_id": deployment_id, "name": "f",
        "map_id": None, "map_index": None, "state": "PENDING", "format": "json", "args": b"{}",
        "result": None, "error": None, "attempts": [], "attempt": 0, "created_at": at or time.time(),
        "not_before": 0.0, "started_at": None, "finished_at": None, "container_id": None,
    }  # fmt: skip


def finish(writer: TaskWriter, task_id: str, result: bytes = b"1") -> None:
    writer.update(
        task_id, state="COMPLETE", result=result, error=None, attempts=[], attempt=1, not_before=0.0,
        started_at=None, finished_at=time.time(), container_id=None,
    )  # fmt: skip


def test_migrations_workspaces_tokens_and_deployments(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        _, secret = await store.create_token("default", "ci", role="user", who=who)
        found = await store.authenticate(secret)
        assert found is not None and found.workspace_name == "default" and found.role == "user"
        assert await store.authenticate(secret + "x") is None
        again, created = await deploy(store, who, "f")
        assert not created and again.id == dep_id
        changed, created = await deploy(store, who, "f", "g", timeout=5)
        assert created and changed.version == 2 and changed.config == {"timeout": 5}
        assert (await store.get_deployment(who.workspace_id, "f")).version == 2
        actions = [entry.action for entry in await store.audit_log(who.workspace_id)]
        assert actions.count("deployment.create") == 2 and "token.create" in actions

    run(store_url, body)


def test_concurrent_deploys_from_two_gateways_get_distinct_versions(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        other = Store(store_url)
        try:
            results = await asyncio.gather(
                *(deploy(s, who, "g", f"f{n}") for n, s in enumerate([store, other, store, other]))
            )
        finally:
            await other.close()
        assert sorted(dep.version for dep, _ in results) == [1, 2, 3, 4]

    run(store_url, body)


def test_claims_take_dead_leaders_tasks_and_follower_tasks_once(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        writer = TaskWriter(store, owner="gw-a")
        writer.start()
        try:
            await writer.insert([row(who.workspace_id, dep_id, f"a{n}", 1000 + n) for n in range(3)])
            await insert_unowned(store, [row(who.workspace_id, dep_id, "b0", 2000)])
            # While gw-a leads it takes only what followers wrote, once.
            assert [r.id for r in await claim_tasks(store, "gw-a", unowned_only=True)] == ["b0"]
            assert await claim_tasks(store, "gw-a", unowned_only=True) == []
            finish(writer, "a0")
            await writer.close()
        finally:
            await writer.close()
        # gw-a died: gw-c takes every open task, oldest first, and a second claim finds none left.
        taken = await claim_tasks(store, "gw-c")
        assert [r.id for r in taken] == ["a1", "a2", "b0"]
        assert {r.owner for r in taken} == {"gw-c"}
        assert await claim_tasks(store, "gw-c") == []
        done = await get_task(store, "a0")
        assert done is not None and done.state == "COMPLETE" and done.owner == "gw-a" and done.result == b"1"

    run(store_url, body)


def test_concurrent_claimers_never_share_a_task(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        await insert_unowned(store, [row(who.workspace_id, dep_id, f"t{n:04d}", 1000 + n) for n in range(600)])
        stores = [store, *(Store(store_url) for _ in range(3))]
        try:

            async def claimer(s: Store, name: str) -> list[str]:
                ids: list[str] = []
                for _ in range(20):
                    ids += [r.id for r in await claim_tasks(s, name, unowned_only=True)]
                    await asyncio.sleep(0)
                return ids

            claimed = await asyncio.gather(*(claimer(s, f"gw-{n}") for n, s in enumerate(stores)))
        finally:
            for s in stores[1:]:
                await s.close()
        every = [task_id for ids in claimed for task_id in ids]
        assert len(every) == len(set(every)) == 600

    run(store_url, body)


def test_scheduler_lease_has_one_holder_and_moves_when_it_lapses(store_url: str) -> None:
    async def body(store: Store, who: Principal, dep_id: str) -> None:
        assert await take_lease(store, "gw-a", "http://a", 0.6)
        assert not await take_lease(store, "gw-b", "http://b", 0.6)
        assert await take_lease(store, "gw-a", "http://a", 0.6)  # renewal keeps the epoch
        view = await read_lease(store)
        assert view is not None and view.live and (view.holder, view.url, view.epoch) == ("gw-a", "http://a", 1)
        await asyncio.sleep(0.8)
        lapsed = await read_lease(store)
        assert lapsed is not None and not lapsed.live
        assert await take_lease(store, "gw-b", "http://b", 5)
        assert not await take_lease(store, "gw-a", "http://a", 5)  # the old holder cannot renew any more
        view = await read_lease(store)
        assert view is not None and (view.holder, view.epoch) == ("gw-b", 2)
        await release_lease(store, "gw-b")  # a clean shutdown: taken over at once
        assert await take_lease(store, "gw-a", "http://a", 5)
        # Two gateways racing for a free lease: exactly one wins.
        await release_lease(store, "gw-a")
        other = Store(store_url)
        try:
            wins = await asyncio.gather(*(take_lease(s, f"gw-{n}", "u", 5) for n, s in enumerate([store, other] * 3)))
        finally:
            await other.close()
        assert sum(wins) == 1

    run(store_url, body)


def test_migrations_on_three_gateways_at_once(pg_url: str) -> None:
    """PostgreSQL only (several gateways need it): an advisory lock lets one migrate at a time."""

    async def main() -> None:
        stores = [Store(pg_url) for _ in range(3)]
        try:
            await asyncio.gather(*(s.migrate() for s in stores))
            assert await read_lease(stores[0]) is not None
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())


def test_notify_wakes_a_waiter_on_another_gateway(pg_url: str) -> None:
    """PostgreSQL only: a task finished by one gateway wakes a caller waiting on another, at once."""

    async def body(store: Store, who: Principal, dep_id: str) -> None:
        watch = TaskWatch(listening=True)
        new: list[str] = []
        listener = Listener(pg_url)
        listener.subscribe(DONE_TASKS_CHANNEL, watch.finished)
        listener.subscribe(NEW_TASKS_CHANNEL, new.append)
        listener.start()
        other = Store(pg_url)  # the leader's own connections
        writer = TaskWriter(other, owner="gw-a")
        writer.start()
        try:
            await asyncio.wait_for(listener.connected.wait(), 10)
            await insert_unowned(store, [row(who.workspace_id, dep_id, "t1")])
            await writer.insert([row(who.workspace_id, dep_id, "t2")])
            waiting = asyncio.create_task(watch.wait("t2", 30))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            started = time.monotonic()
            finish(writer, "t2")
            await asyncio.wait_for(waiting, 5)
            assert time.monotonic() - started < 1.0
            await watch.wait("t2", 30)  # finished before the wait began: remembered, no wait
            assert time.monotonic() - started < 1.0
            assert new == [dep_id]
        finally:
            await writer.close()
            await other.close()
            await listener.close()

    run(pg_url, body)


@pytest.mark.parametrize("payload", ["", "a,,b"])
def test_task_watch_ignores_empty_ids(payload: str) -> None:
    watch = TaskWatch(listening=True)
    watch.finished(payload)
    assert "" not in watch._recent
