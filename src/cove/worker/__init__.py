"""The worker: the node agent that runs containers for a gateway.

It speaks to the gateway only over HTTP (the same protocol from this machine
or another host) and never opens the database. See :func:`run_worker`.

Names are loaded on first use, so ``python -m cove.worker`` reaches its front
end (which says which extra is missing on an SDK-only install) before the
worker's own dependencies are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._settings import WorkerSettings, detect_capacity
    from ._worker import Worker, WorkerRefused, run_worker

__all__ = ["Worker", "WorkerRefused", "WorkerSettings", "detect_capacity", "run_worker"]

_WHERE = {
    "WorkerSettings": "._settings",
    "detect_capacity": "._settings",
    "Worker": "._worker",
    "WorkerRefused": "._worker",
    "run_worker": "._worker",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value
