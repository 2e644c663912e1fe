"""``cove server``: the gateway, the scheduler and a local worker on one machine, and the JSON logs they write.

The names below load the gateway (FastAPI, SQLAlchemy, Alembic) on first use,
not on import: ``cove worker`` imports :mod:`cove.server.json_logs` only, and
a worker process must not pay seconds of the gateway's imports to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._launch import ServerSettings, local_worker_argv, run

__all__ = ["ServerSettings", "local_worker_argv", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("._launch", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
