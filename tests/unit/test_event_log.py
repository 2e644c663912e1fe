"""The event log's store side: batched writes that never wait, reads per workspace with a cursor, expiry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cove.store import EventWriter, Store, events_retention_from_env, list_events, prune_events, sqlite_url


def _run(tmp_path: Path, body: object) -> None:
    async def main() -> None:
        store = Store(sqlite_url(tmp_path / "cove.db"))
        await store.migrate()
        try:
            await body(store)  # type: ignore[operator]
        finally:
            await store.close()

    asyncio.run(main())


def test_recording_returns_at_once_and_one_batch_writes_a_burst(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        writer = EventWriter(store)
        writer.start()
        started = time.perf_counter()
        for n in range(200):
            writer.record("ws-a", "scale", f"decision {n}", "svc", version=1, desired=n)
        assert time.perf_counter() - started < 0.05  # no database round trip per event
        writer.record("ws-b", "placed", "somewhere else", "other")
        writer.record(None, "worker", "worker w1 joined")
        await writer.close()
        mine = await list_events(store, "ws-a", limit=1000)
        assert [e.reason for e in mine] == [f"decision {n}" for n in range(200)]
        assert mine[-1].inputs == {"version": 1, "desired": 199}
        assert [e.kind for e in await list_events(store, "ws-b")] == ["placed"]
        assert [e.kind for e in await list_events(store, "ws-b", cluster=True)] == ["placed", "worker"]

    _run(tmp_path, body)


def test_a_cursor_returns_only_newer_events_and_a_filter_one_deployment(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        writer = EventWriter(store)
        for n in range(5):
            writer.record("ws", "ready", f"r{n}", "a" if n % 2 else "b")
        await writer.flush()
        newest = await list_events(store, "ws", limit=2)
        assert [e.reason for e in newest] == ["r3", "r4"]
        after = await list_events(store, "ws", after=newest[0].id)
        assert [e.reason for e in after] == ["r4"]
        assert [e.reason for e in await list_events(store, "ws", deployment="a")] == ["r1", "r3"]

    _run(tmp_path, body)


def test_events_past_the_retention_are_pruned(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        writer = EventWriter(store)
        writer.record("ws", "exited", "old")
        await asyncio.sleep(0.01)
        cutoff = time.time()
        await asyncio.sleep(0.01)
        writer.record("ws", "exited", "new")
        await writer.flush()
        assert await prune_events(store, cutoff) == 1
        assert [e.reason for e in await list_events(store, "ws")] == ["new"]

    _run(tmp_path, body)


def test_the_retention_setting_has_one_default_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COVE_EVENTS_RETENTION", raising=False)
    assert events_retention_from_env() == 7 * 86400
    monkeypatch.setenv("COVE_EVENTS_RETENTION", "3600")
    assert events_retention_from_env() == 3600
    for bad in ("soon", "1"):
        monkeypatch.setenv("COVE_EVENTS_RETENTION", bad)
        with pytest.raises(ValueError, match="COVE_EVENTS_RETENTION"):
            events_retention_from_env()


def test_an_exit_says_whether_memory_or_the_start_timeout_ended_the_container(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from cove.scheduler._events import START_TIMEOUT_REASON, EventLog

    deployment: Any = SimpleNamespace(workspace_id="ws-x", name="svc", version=2)

    async def body(store: Store) -> None:
        writer = EventWriter(store)
        writer.start()
        log = EventLog(writer)
        log.exited(deployment, "ctr-1", "OOMKilled: the container used its 64 MiB", failed=False, exit_code=137)
        log.exited(deployment, "ctr-2", START_TIMEOUT_REASON, failed=True, exit_code=None)
        log.exited(deployment, "ctr-3", "container exited with code 3", failed=True, exit_code=3)
        await writer.close()
        rows = {e.inputs["container"]: e.inputs for e in await list_events(store, "ws-x")}
        assert rows["ctr-1"] == {
            "version": 2, "container": "ctr-1", "exit_code": 137, "failed": False, "oom": True, "timeout": False,
        }  # fmt: skip
        assert rows["ctr-2"]["timeout"] is True and rows["ctr-2"]["oom"] is False and rows["ctr-2"]["failed"] is True
        assert rows["ctr-3"]["exit_code"] == 3 and not rows["ctr-3"]["oom"] and not rows["ctr-3"]["timeout"]

    _run(tmp_path, body)
