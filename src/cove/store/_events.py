"""The event log: control-plane decisions, written in batches and kept for a while.

The scheduler decides on its event loop and must never wait for the
database to say why: ``EventWriter.record`` only appends to a bounded queue,
and a background task writes what piled up in one INSERT per batch. When the
database falls far behind, the oldest unwritten events are dropped (and the
drop is logged) rather than the scheduler slowing down or memory growing.
Rows older than the retention are deleted now and then by the same task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, or_, select

from . import _models as m
from ._store import Store

log = logging.getLogger("cove.store.events")

RETENTION_ENV = "COVE_EVENTS_RETENTION"
DEFAULT_RETENTION_SECONDS = 7 * 86400.0
PRUNE_EVERY_SECONDS = 3600.0
MAX_QUEUED = 10_000  # unwritten events kept while the database lags; older ones are dropped past this
MAX_BATCH = 500
LINGER_SECONDS = 0.05  # gather the events of one burst (a scale-up, a drain) into one write
MAX_LIMIT = 1000  # the most events one read returns


def retention_from_env() -> float:
    """How long events are kept, in seconds (``COVE_EVENTS_RETENTION``; default 7 days)."""
    text = os.environ.get(RETENTION_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_RETENTION_SECONDS
    except ValueError:
        raise ValueError(f"{RETENTION_ENV}={text!r} is not a number of seconds") from None
    if not 60 <= value <= 366 * 86400:
        raise ValueError(f"{RETENTION_ENV}={text!r} must be from 60 seconds to 366 days")
    return value


class EventWriter:
    """Queues events without waiting and writes them in batches; prunes expired ones on the side."""

    def __init__(self, store: Store, retention: float = DEFAULT_RETENTION_SECONDS) -> None:
        self._store = store
        self.retention = retention
        self._queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED)
        self._dropped = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pruned = 0.0

    def record(
        self, workspace_id: str | None, kind: str, reason: str, deployment: str | None = None, **inputs: Any
    ) -> None:
        """Queue one event; returns at once. ``workspace_id`` None: an event of the whole cluster."""
        if len(self._queue) == MAX_QUEUED:
            self._dropped += 1
        self._queue.append(
            {
                "ts": time.time(),
                "workspace_id": workspace_id,
                "kind": kind,
                "deployment": deployment,
                "reason": reason,
                "inputs": inputs,
            }
        )
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="cove-event-writer")

    async def close(self) -> None:
        """Stop the background task and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            while self._queue:
                await self._write_batch()

    async def flush(self) -> None:
        """Write everything queued now (tests, and a clean shutdown)."""
        while self._queue:
            await self._write_batch()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(LINGER_SECONDS)
            try:
                while self._queue:
                    await self._write_batch()
                await self._prune_if_due()
            except Exception:
                log.exception("writing events failed; %d wait for the next try", len(self._queue))
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _write_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(m.Event), batch)
        except BaseException:
            self._queue.extendleft(reversed(batch))  # kept for the next try, in their order
            raise
        if self._dropped:
            log.warning("dropped %d events: the database fell more than %d events behind", self._dropped, MAX_QUEUED)
            self._dropped = 0

    async def _prune_if_due(self) -> None:
        now = time.monotonic()
        if now - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        gone = await prune_events(self._store, time.time() - self.retention)
        if gone:
            log.info("pruned %d events older than %g s", gone, self.retention)


async def prune_events(store: Store, before: float) -> int:
    """Delete the events recorded before ``before``; returns how many went."""
    async with store.engine.begin() as conn:
        result = await conn.execute(delete(m.Event).where(m.Event.ts < before))
    return int(result.rowcount or 0)


async def list_events(
    store: Store,
    workspace_id: str,
    *,
    cluster: bool = False,
    deployment: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> Sequence[m.Event]:
    """A workspace's events, oldest first (``cluster``: the cluster's own too).

    With ``after`` (a cursor: the id of the last event seen) the first
    ``limit`` events after it; without, the newest ``limit``.
    """
    query = select(m.Event)
    mine = m.Event.workspace_id == workspace_id
    query = query.where(or_(mine, m.Event.workspace_id.is_(None)) if cluster else mine)
    if deployment:
        query = query.where(m.Event.deployment == deployment)
    limit = max(1, min(limit, MAX_LIMIT))
    async with store.session() as s:
        if after is not None:
            rows = await s.scalars(query.where(m.Event.id > after).order_by(m.Event.id).limit(limit))
            return rows.all()
        rows = await s.scalars(query.order_by(m.Event.id.desc()).limit(limit))
        return list(reversed(rows.all()))
