"""Firing ``@schedule`` deployments: each tick claimed once in the store, then run as a durable task."""

from __future__ import annotations

import logging
import time

from ..store import Deployment, Store, claim_tick, last_tick, set_tick_task
from ._cron import due_ticks
from ._dispatch import Dispatcher, QueueFull

log = logging.getLogger("cove.scheduler.cron")


class CronTicker:
    """Checks every schedule once a second; safe to run in several gateways at once."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.up_since = time.time()
        self._last: dict[tuple[str, str], float] = {}

    async def tick(self, now: float | None = None) -> None:
        now = now or time.time()
        for deployment in await self.store.active_schedules():
            try:
                await self._fire(deployment, now)
            except Exception:
                log.exception("schedule %s failed to fire", deployment.name)

    async def _fire(self, deployment: Deployment, now: float) -> None:
        key = (deployment.workspace_id, deployment.name)
        after = self._last.get(key)
        if after is None:
            after = await last_tick(self.store, *key) or deployment.created_at
        when, timezone = deployment.config["schedule"]
        for tick in due_ticks(when, timezone, after, now, self.up_since):
            self._last[key] = tick.at
            state = "MISSED" if tick.missed else "STARTED"
            if not await claim_tick(self.store, deployment.workspace_id, deployment.name, tick.at, state):
                continue  # another gateway has this tick
            if tick.missed:
                log.warning("schedule %s missed its run at %s: no gateway was up", deployment.name, tick.at)
                continue
            try:
                [item] = await self.dispatcher.submit(deployment, [("json", b"{}")], durable=True)
            except QueueFull as exc:
                log.warning("schedule %s skipped a run: %s", deployment.name, exc)
                continue
            await set_tick_task(self.store, deployment.workspace_id, deployment.name, tick.at, item.id)
        self._last.setdefault(key, after)
