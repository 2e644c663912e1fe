"""The invocation path's deployment lookups: one store read per entry at a time, refreshed before it expires.

Every request used to read the traffic split itself once its cached entry
expired, so a gateway under load made one store read per request in flight at
that moment and held them all back meanwhile (the tail of its latency).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cove.gateway import _state
from cove.gateway._state import DeploymentCache
from cove.store import Principal, Store, put_split
from cove.store import get_split as read_split
from cove.store._store import sqlite_url


async def _store(tmp_path: Path) -> tuple[Store, Principal]:
    store = Store(sqlite_url(tmp_path / "cove.db"))
    await store.migrate()
    ws = await store.ensure_workspace("default")
    who = Principal("tok-test", ws.id, ws.name, "admin")
    await store.put_image("img", {}, status="ready")
    await store.add_code("c" * 64, 1, who)
    for function in ("f", "g"):  # two versions of one name
        await store.create_deployment(
            who, name="echo", app="a", kind="endpoint", module="m", function=function, image_id="img",
            code_hash="c" * 64, config={},
        )  # fmt: skip
    return store, who


class _Counted:
    """The store reads the cache makes, counted, each held back ``delay`` seconds (a busy database)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
        self.splits = 0
        self.deployments = 0
        real_split, real_get = read_split, store.get_deployment

        async def get_split(*args: Any) -> Any:
            self.splits += 1
            await asyncio.sleep(delay)
            return await real_split(*args)

        async def get_deployment(*args: Any) -> Any:
            self.deployments += 1
            await asyncio.sleep(delay)
            return await real_get(*args)

        monkeypatch.setattr(_state, "get_split", get_split)
        monkeypatch.setattr(store, "get_deployment", get_deployment)


def test_requests_at_an_expired_entry_share_one_store_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        store, who = await _store(tmp_path)
        try:
            reads = _Counted(store, monkeypatch, delay=0.05)
            cache = DeploymentCache(store, ttl=60.0)
            found = await asyncio.gather(*(cache.get(who.workspace_id, "echo", None) for _ in range(32)))
            assert {d.version for d in found} == {2}  # the newest, with no split
            assert (reads.splits, reads.deployments) == (1, 1)
        finally:
            await store.close()

    asyncio.run(body())


def test_an_entry_in_use_is_read_again_before_it_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        store, who = await _store(tmp_path)
        try:
            reads = _Counted(store, monkeypatch, delay=0.1)
            cache = DeploymentCache(store, ttl=0.4, refresh_ahead=0.3)
            await cache.get(who.workspace_id, "echo", None)
            assert (reads.splits, reads.deployments) == (1, 1)
            await asyncio.sleep(0.15)  # within the last 0.3 s of the entry: answered at once, read again behind it
            await put_split(store, who, "echo", {1: 100})  # another gateway sends every call to v1
            async with asyncio.timeout(0.05):  # not held back by the 0.1 s read
                still = await cache.get(who.workspace_id, "echo", None)
            assert still.version == 2
            await asyncio.sleep(0)  # the refreshes, started behind the answer, get to run
            assert (reads.splits, reads.deployments) == (2, 2)
            await asyncio.sleep(0.2)  # the refreshes are in; the first entries would have expired by now
            now = await cache.get(who.workspace_id, "echo", None)  # v1 was never asked for: it is read once
            assert now.version == 1  # the change is seen within the entry's lifetime, as before
            assert (reads.splits, reads.deployments) == (2, 3)  # the split came from the refresh, not a new read
        finally:
            await store.close()

    asyncio.run(body())
