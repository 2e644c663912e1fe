"""LISTEN/NOTIFY on PostgreSQL: wake-ups between gateways without polling the database hard.

One dedicated connection per gateway listens; handlers run on the event loop.
When the connection drops it reconnects and calls ``on_reconnect`` handlers,
because notifications sent in between are lost and whoever waits must look
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger("cove.store.notify")

Handler = Callable[[str], None]


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN asyncpg accepts (``postgresql+asyncpg://`` → ``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Delivers NOTIFY payloads of the subscribed channels to handlers, reconnecting as needed."""

    def __init__(self, url: str, retry_seconds: float = 1.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self._retry = retry_seconds
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Add a handler; subscribe before ``start`` (channels are listened to on connect)."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        self._reconnect.append(handler)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cove-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _deliver(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("a handler of %s failed", channel)

    async def _run(self) -> None:
        import asyncpg

        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot connect to listen for notifications (%s); retrying", exc)
                await asyncio.sleep(self._retry)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._handlers:
                    await conn.add_listener(channel, self._deliver)
                self.connected.set()
                if not first:
                    for handler in self._reconnect:
                        handler()
                first = False
                await lost.wait()
                log.warning("the notification connection closed; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listening for notifications failed (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(self._retry)


class TaskWatch:
    """Wakes callers waiting for a task to finish when any gateway reports it done.

    Ids finished recently are remembered, so a caller that starts waiting just
    after the notification still sees it. Without a listener (SQLite: one
    gateway), ``wait`` is a short sleep and the caller re-reads the row.
    """

    RECENT = 10_000

    def __init__(self, listening: bool) -> None:
        self.listening = listening
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._recent: dict[str, None] = {}

    def finished(self, payload: str) -> None:
        for task_id in payload.split(","):
            if not task_id:
                continue
            self._recent[task_id] = None
            for event in self._waiters.get(task_id, ()):
                event.set()
        while len(self._recent) > self.RECENT:
            self._recent.pop(next(iter(self._recent)))

    def wake_all(self) -> None:
        """After a reconnect: notifications may have been lost, so every waiter looks again."""
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        """Return when ``task_id`` may have finished, or after ``timeout`` (or 0.2 s without a listener)."""
        if not self.listening:
            await asyncio.sleep(min(0.2, timeout))
            return
        if task_id in self._recent:
            return
        event = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[task_id]
