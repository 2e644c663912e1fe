"""The worker: the node agent that runs containers for a gateway.

It speaks to the gateway only over HTTP (the same protocol from this machine
or another host) and never opens the database. See :func:`run_worker`.
"""

from ._settings import WorkerSettings, detect_capacity
from ._worker import Worker, WorkerRefused, run_worker

__all__ = ["Worker", "WorkerRefused", "WorkerSettings", "detect_capacity", "run_worker"]
