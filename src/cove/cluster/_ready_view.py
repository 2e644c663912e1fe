"""Which containers are ready, and where: a follower's view, refreshed from the store a few times a second.

A gateway that does not lead relays endpoint invocations straight to ready
containers. It learns them from the rows the leader's scheduler writes
(state and address), read every ``poll_seconds`` rather than per request: a
container that became ready is used at most that much later, and one that
stopped is dropped as late (a request that finds it gone fails over, see
``cove.gateway._follower_slots``).

Only addresses this gateway can reach are kept: ``tcp:`` ones, and ``unix:``
sockets whose file exists here (the container runs on this gateway's host).
A deployment whose containers all listen on another host's unix sockets has
no usable container here (``unreachable``), and its requests go to the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from ..store import Store, ready_containers

log = logging.getLogger("cove.cluster")

POLL_SECONDS = 0.2

# deployment id -> {container id: address}
ReadyMap = dict[str, dict[str, str]]


def reachable(address: str) -> bool:
    """Whether this gateway can connect to a container at ``address``."""
    if address.startswith("tcp:"):
        return True
    return address.startswith("unix:") and os.path.exists(address[5:])


class ReadyView:
    """Polls the store while this gateway follows and hands each picture to ``on_change``."""

    def __init__(
        self,
        store: Store,
        following: Callable[[], bool],
        on_change: Callable[[ReadyMap], None],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.following = following
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.ready: ReadyMap = {}
        # Deployments whose ready containers all listen where this gateway cannot connect (another host's sockets).
        self.unreachable: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll_forever(), name="cove-ready-view")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        """Read the ready containers once; a failed read keeps the last picture (the containers likely still run)."""
        try:
            rows = await ready_containers(self.store)
        except Exception as exc:
            log.warning("the ready containers could not be read: %r", exc)
            return
        ready: ReadyMap = {}
        elsewhere: set[str] = set()
        for row in rows:
            if reachable(row.address):
                ready.setdefault(row.deployment_id, {})[row.id] = row.address
            else:
                elsewhere.add(row.deployment_id)
        self.ready = ready
        self.unreachable = frozenset(elsewhere - ready.keys())
        self.on_change(ready)  # every time: a slot dropped after a failed connection comes back if still ready

    async def _poll_forever(self) -> None:
        while True:
            if self.following():
                await self.refresh()
            elif self.ready:
                self.ready = {}  # leading: the scheduler routes; nothing is relayed from this view
                self.on_change({})
            await asyncio.sleep(self.poll_seconds)
