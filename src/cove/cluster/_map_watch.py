"""Wake-ups for callers long-polling a ``.map``'s outputs from the store, when any gateway reports new ones.

The leader's task writer notifies ``cove_maps_done`` with the ids of maps
whose outputs it committed; a caller registers before it reads the store, so
a notification between its read and its wait is not lost. Without a listener
(SQLite: one gateway) a wait is a short sleep and the caller reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

POLL_SECONDS = 0.2  # without notifications: how often a waiting caller reads the store again


class MapWatch:
    """Per map, the events of the callers waiting for its next outputs."""

    def __init__(self, listening: bool) -> None:
        self.listening = listening
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def changed(self, payload: str) -> None:
        for map_id in payload.split(","):
            for event in self._waiters.get(map_id, ()):
                event.set()

    def wake_all(self) -> None:
        """After a reconnect: notifications may have been lost, so every waiter reads again."""
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def watching(self, map_id: str) -> Iterator[asyncio.Event]:
        """An event set when the map's outputs may have grown; register it before reading the store."""
        event = asyncio.Event()
        self._waiters.setdefault(map_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(map_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[map_id]

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until ``event`` is set (then cleared for the next wait) or ``timeout``; a short sleep without listening."""
        if not self.listening:
            await asyncio.sleep(min(POLL_SECONDS, timeout))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        event.clear()
