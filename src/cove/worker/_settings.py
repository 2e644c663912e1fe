"""How a worker is configured."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from cove._host.home import Home
from cove._host.python_envs import roots_from_env
from cove._wire.models import MODELS_URL_ENV
from cove._wire.server_defaults import DEFAULT_RUNTIME

WEIGHT_CACHE_ENV = "COVE_WEIGHT_CACHE_GIB"
DEFAULT_WEIGHT_CACHE_GIB = 100.0


def weight_cache_bytes_from_env() -> int:
    """The node weight cache's size limit (``COVE_WEIGHT_CACHE_GIB``, default 100 GiB)."""
    text = os.environ.get(WEIGHT_CACHE_ENV, "")
    try:
        gib = float(text) if text else DEFAULT_WEIGHT_CACHE_GIB
    except ValueError:
        raise ValueError(f"{WEIGHT_CACHE_ENV}={text!r} is not a number of GiB") from None
    if gib <= 0:
        raise ValueError(f"{WEIGHT_CACHE_ENV}={text!r} must be more than 0")
    return int(gib * 1024**3)


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """One worker's identity, capacity and gateway.

    ``stop_grace_seconds`` is how long a stopping container may finish its calls
    before it is killed; ``poll_wait_seconds`` is the long-poll length for orders.
    ``runtime`` names the engine (``auto``, ``crun``, ``runc`` or ``process``; see
    :func:`cove.runtime.select_runtime`); left out, ``$COVE_RUNTIME`` or
    :data:`cove._wire.server_defaults.DEFAULT_RUNTIME`, the best isolation available, as
    for ``cove worker``, ``python -m cove.worker`` and ``cove server``'s local worker.
    ``advertise_host`` makes containers listen on TCP ports of that address.
    ``python_env_roots`` are the folders an existing environment (``python_env``)
    must lie in to be mounted (``cove worker --python-env-root DIR``; default
    ``$COVE_PYTHON_ENV_ROOTS``, separated by ``:``).
    """

    gateway_url: str
    token: str
    name: str
    home: Home
    cpu_millis: int
    memory_mib: int
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    heartbeat_seconds: float = 2.0
    stop_grace_seconds: float = 10.0
    poll_wait_seconds: float = 20.0
    runtime: str = dataclasses.field(default_factory=lambda: os.environ.get("COVE_RUNTIME", DEFAULT_RUNTIME))
    # On another host than the gateway: the address gateways reach this machine at. Containers then
    # listen on TCP ports of it instead of unix sockets. None: the worker shares the gateway's machine.
    advertise_host: str | None = None
    python_env_roots: tuple[Path, ...] = dataclasses.field(default_factory=roots_from_env)
    # The reservoir model weights are fetched from (``COVE_MODELS_URL``); None: the one the gateway names.
    models_url: str | None = dataclasses.field(default_factory=lambda: os.environ.get(MODELS_URL_ENV) or None)
    # The node weight cache's size limit; over it, weights no running container uses are evicted.
    weight_cache_bytes: int = dataclasses.field(default_factory=weight_cache_bytes_from_env)


def detect_capacity() -> tuple[int, int]:
    """This machine's usable cpu (millicores) and memory (MiB), for a worker's defaults."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        memory = 1024
    return cpus * 1000, int(memory)
