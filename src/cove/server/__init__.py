"""``cove server``: the gateway, the scheduler and a local worker on one machine, and the JSON logs they write."""

from ._launch import ServerSettings, local_worker_argv, run

__all__ = ["ServerSettings", "local_worker_argv", "run"]
