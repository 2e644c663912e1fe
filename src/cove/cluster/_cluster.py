"""This gateway's place in the cluster: leading (holding the scheduler lease) or following.

On PostgreSQL every gateway campaigns for the ``scheduler`` lease: the holder
renews it every ``renew_seconds``; the others try to take it every
``poll_seconds`` and learn the leader's URL from it. A holder that dies stops
renewing, and the lease lapses ``lease_seconds`` later. A holder that cannot
renew for most of ``lease_seconds`` (or finds the lease taken) exits at once,
before anyone else may take the lease, so two schedulers never run together;
its supervisor restarts it as a follower.

On SQLite there is one gateway: it leads from the start, and none of this
runs (no lease, no listener, no forwarding).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..store import (
    DONE_TASKS_CHANNEL,
    MAPS_DONE_CHANNEL,
    NEW_TASKS_CHANNEL,
    Listener,
    Store,
    TaskWatch,
    new_id,
    read_lease,
    release_lease,
    take_lease,
)
from ._forward import FORWARDED, Forwarder, unavailable
from ._map_watch import MapWatch
from ._presence import Presence

log = logging.getLogger("cove.cluster")

DEPOSED_EXIT_CODE = 75  # EX_TEMPFAIL: restart me (as a follower)


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """Lease timing and the URL other gateways forward to (``$COVE_ADVERTISE_URL``, else the public URL)."""

    advertise_url: str
    lease_seconds: float = 6.0
    renew_seconds: float = 1.5
    poll_seconds: float = 1.0
    adopt_seconds: float = 5.0

    @classmethod
    def for_gateway(cls, public_url: str) -> ClusterSettings:
        return cls(advertise_url=os.environ.get("COVE_ADVERTISE_URL") or public_url)


def _exit_deposed(reason: str) -> None:
    log.critical("this gateway lost the scheduler lease (%s); exiting so it can restart as a follower", reason)
    logging.shutdown()
    os._exit(DEPOSED_EXIT_CODE)


class Cluster:
    """Leadership, the leader's address, cross-gateway wake-ups and the forwarding hop."""

    def __init__(
        self, store: Store, settings: ClusterSettings, on_deposed: Callable[[str], None] = _exit_deposed
    ) -> None:
        self.store = store
        self.settings = settings
        self.gateway_id = new_id("gw")
        self.shared = store.is_postgres
        self.leading = not self.shared
        self.leader_url: str | None = settings.advertise_url if self.leading else None
        self.watch = TaskWatch(listening=self.shared)
        self.map_watch = MapWatch(listening=self.shared)
        self.new_work = asyncio.Event()
        self._on_deposed = on_deposed
        self._listener = Listener(store.url) if self.shared else None
        self.presence = Presence(store, self.gateway_id, settings.advertise_url, settings.lease_seconds)
        self._forwarder: Forwarder | None = None
        self._holding = False
        self._renewed_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, lead: Callable[[], Awaitable[None]], adopt: Callable[[], Awaitable[int]]) -> None:
        """Lead now (SQLite), or campaign for the lease; ``lead`` starts the scheduler when this gateway wins.

        ``adopt`` takes the tasks other gateways accepted; the leader runs it when
        woken by NOTIFY, and every ``adopt_seconds`` in case a wake-up was lost.
        """
        if not self.shared:
            await lead()
            return
        assert self._listener is not None
        self._listener.subscribe(DONE_TASKS_CHANNEL, self.watch.finished)
        self._listener.subscribe(MAPS_DONE_CHANNEL, self.map_watch.changed)
        self._listener.subscribe(NEW_TASKS_CHANNEL, lambda _payload: self.new_work.set())
        self._listener.on_reconnect(self.watch.wake_all)
        self._listener.on_reconnect(self.map_watch.wake_all)
        self._listener.on_reconnect(self.new_work.set)
        self._listener.start()
        await self.presence.renew()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listener.connected.wait(), self.settings.lease_seconds)
        if await self._try_lease():
            await self._lead(lead)  # the first gateway up leads before it serves its first request
        self._tasks.append(asyncio.create_task(self._campaign(lead), name="cove-lease"))
        self._tasks.append(asyncio.create_task(self._adopt_forever(adopt), name="cove-adopt"))
        self._tasks.append(asyncio.create_task(self._present_forever(), name="cove-presence"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._holding:
            with contextlib.suppress(Exception):
                await release_lease(self.store, self.gateway_id)
        if self.shared:
            await self.presence.leave()
        if self._listener is not None:
            await self._listener.close()
        if self._forwarder is not None:
            await self._forwarder.close()

    # -- the lease ---------------------------------------------------------------------------

    async def _try_lease(self) -> bool:
        """Take or renew the lease; on failure, learn who holds it."""
        s = self.settings
        async with asyncio.timeout(s.renew_seconds * 2):
            if await take_lease(self.store, self.gateway_id, s.advertise_url, s.lease_seconds):
                self._renewed_at = time.monotonic()
                return True
            view = await read_lease(self.store)
        self.leader_url = view.url if view is not None and view.live else None
        return False

    async def _lead(self, lead: Callable[[], Awaitable[None]]) -> None:
        self._holding = True
        self.leader_url = None  # until the scheduler runs, requests wait for a leader rather than loop
        log.info("this gateway (%s) holds the scheduler lease; starting the scheduler", self.gateway_id)
        try:
            await lead()
        except Exception as exc:
            log.exception("starting the scheduler failed")
            self._on_deposed(f"the scheduler did not start: {exc!r}")
            return
        self.leading = True
        self.leader_url = self.settings.advertise_url
        self.new_work.set()

    async def _campaign(self, lead: Callable[[], Awaitable[None]]) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.renew_seconds if self._holding else s.poll_seconds)
            try:
                held = await self._try_lease()
            except Exception as exc:
                log.warning("the scheduler lease could not be read or renewed: %r", exc)
                held = None
            if self._holding:
                if held is False:
                    self._on_deposed("another gateway holds it")
                elif time.monotonic() - self._renewed_at > s.lease_seconds * 0.75:
                    self._on_deposed(f"not renewed for {time.monotonic() - self._renewed_at:.1f} s")
            elif held:
                # Renewals go on in this loop while the scheduler starts (recovery may take a while).
                self._holding = True
                self._tasks.append(asyncio.create_task(self._lead(lead), name="cove-lead"))

    async def _present_forever(self) -> None:
        """Renew this gateway's row apart from the lease, so a slow query here never delays a renewal."""
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            await self.presence.renew()

    async def _adopt_forever(self, adopt: Callable[[], Awaitable[int]]) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.new_work.wait(), self.settings.adopt_seconds)
            self.new_work.clear()
            if not self.leading:
                continue
            try:
                taken = await adopt()
                if taken:
                    log.info("took %d tasks accepted by other gateways", taken)
            except Exception:
                log.exception("taking tasks accepted by other gateways failed")

    # -- requests ----------------------------------------------------------------------------

    async def forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Relay a request this gateway cannot answer (it does not lead) to the leader."""
        url = self.leader_url
        if url is None or url == self.settings.advertise_url or any(k == FORWARDED for k, _ in scope["headers"]):
            await unavailable(
                send, "no gateway leads the cluster at the moment (a new leader takes over within seconds); retry"
            )
            return
        if self._forwarder is None:
            self._forwarder = Forwarder()
        await self._forwarder.forward(url, scope, receive, send)
