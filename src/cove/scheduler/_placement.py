"""Choosing a worker for a new container."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class WorkerRoom:
    """A worker's free resources as the scheduler sees them."""

    worker_id: str
    free_cpu_millis: int
    free_memory_mib: int


def place(workers: Sequence[WorkerRoom], cpu_millis: int, memory_mib: int) -> str | None:
    """Best fit: the worker left with the least free cpu, so idle workers drain.

    Returns None when no worker has room.
    """
    fitting = [w for w in workers if w.free_cpu_millis >= cpu_millis and w.free_memory_mib >= memory_mib]
    if not fitting:
        return None
    best = min(fitting, key=lambda w: (w.free_cpu_millis - cpu_millis, w.free_memory_mib - memory_mib, w.worker_id))
    return best.worker_id
