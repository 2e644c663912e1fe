"""The last hour of each GPU's utilisation and memory use, for the dashboard's GPU charts.

Every ``BUCKET_SECONDS`` (the deployments' history's buckets) a background task
reads the figures the workers' heartbeats last brought (NVML's, or a fake
inventory's stated ones) and stores them in a fixed-size ring per card: an
hour of two numbers per GPU, and a card not seen for a whole ring is
forgotten. A card whose inventory measures nothing has empty buckets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from ._history import BUCKET_SECONDS, BUCKETS

log = logging.getLogger(__name__)

Reading = tuple[str, float | None, float | None]  # (uuid, utilization %, memory used MiB)


class _CardRing:
    def __init__(self) -> None:
        self.starts = array("d", bytes(8 * BUCKETS))
        self.utilization = array("d", [math.nan] * BUCKETS)
        self.memory_used = array("d", [math.nan] * BUCKETS)
        self.last_written = 0.0

    def add(self, start: float, utilization: float | None, memory_used: float | None) -> None:
        i = int(start // BUCKET_SECONDS) % BUCKETS
        self.starts[i] = start
        self.utilization[i] = math.nan if utilization is None else utilization
        self.memory_used[i] = math.nan if memory_used is None else memory_used
        self.last_written = start


def _value(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 2)


class GpuHistory:
    """Each card's ring, by UUID."""

    def __init__(self) -> None:
        self._rings: dict[str, _CardRing] = {}

    def sample(self, now: float, readings: Iterable[Reading]) -> None:
        start = math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS - BUCKET_SECONDS  # the bucket that just ended
        for uuid, utilization, memory_used in readings:
            self._rings.setdefault(uuid, _CardRing()).add(start, utilization, memory_used)
        gone = [uuid for uuid, ring in self._rings.items() if ring.last_written < start - BUCKETS * BUCKET_SECONDS]
        for uuid in gone:
            del self._rings[uuid]

    def view(self, uuid: str, now: float) -> dict[str, Any]:
        """The hour up to ``now``, oldest bucket first; null where nothing was read or measured."""
        last = math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS - BUCKET_SECONDS
        first = last - (BUCKETS - 1) * BUCKET_SECONDS
        ring = self._rings.get(uuid)
        utilization: list[float | None] = []
        memory_used: list[float | None] = []
        for n in range(BUCKETS):
            start = first + n * BUCKET_SECONDS
            i = int(start // BUCKET_SECONDS) % BUCKETS
            written = ring is not None and ring.starts[i] == start
            utilization.append(_value(ring.utilization[i]) if ring is not None and written else None)
            memory_used.append(_value(ring.memory_used[i]) if ring is not None and written else None)
        return {
            "bucket_seconds": BUCKET_SECONDS,
            "start": first,
            "utilization": utilization,
            "memory_used_mib": memory_used,
        }

    async def run(self, readings: Callable[[], list[Reading]]) -> None:
        """Read at every bucket's end until cancelled; a failed read is logged and the next one tries again."""
        while True:
            await asyncio.sleep(BUCKET_SECONDS - time.time() % BUCKET_SECONDS + 0.05)
            try:
                self.sample(time.time(), readings())
            except Exception:
                log.exception("reading the GPU history failed")
