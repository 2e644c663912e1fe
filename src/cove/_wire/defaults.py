"""Every default a deployment gets, per kind, declared once.

The SDK's decorators, ``DeploymentConfig`` (built directly, by ``build()`` or
by ``from_dict()``), the gateway and the scheduler all read a missing setting
from ``KIND_DEFAULTS``, so an option left out means the same thing wherever it
is read. Kinds differ where their work differs: a caller waits on an endpoint,
so it is not retried and times out soon; a function or task runs long and is
retried; a function is often fanned out by ``.map``, so it asks for a quarter
of a core.
"""

from __future__ import annotations

from types import MappingProxyType

from cove._wire.frozen import Frozen

from ..exceptions import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class KindDefaults(Frozen):
    """The settings one kind of deployment gets when they are not given."""

    __slots__ = (
        "authorized",
        "backoff",
        "buffer_containers",
        "concurrent_requests",
        "cpu_millis",
        "keep_warm_seconds",
        "max_containers",
        "max_delay",
        "max_pending_tasks",
        "memory_mib",
        "min_containers",
        "retries",
        "retry_delay_seconds",
        "scale_down_window",
        "tasks_per_container",
        "timeout",
        "workers",
    )
    authorized: bool  # calls need a token of the workspace
    backoff: float  # task policy: each retry waits this many times longer than the one before
    buffer_containers: int  # the autoscaler: idle containers kept ahead of demand while there is work
    concurrent_requests: int  # per container
    cpu_millis: int
    keep_warm_seconds: float  # an idle container stops after this; -1: never
    max_containers: int
    max_delay: float  # task policy: the longest wait between two attempts
    max_pending_tasks: int
    memory_mib: int
    min_containers: int
    retries: int  # attempts after the first
    retry_delay_seconds: float  # task policy: the wait after the first failed attempt
    scale_down_window: float  # the autoscaler: seconds the wanted count must stay low before containers stop
    tasks_per_container: int  # the autoscaler's target of in-flight inputs per container
    timeout: float  # seconds per request or attempt; -1: none
    workers: int  # processes per container

    def __init__(
        self,
        *,
        authorized: bool,
        backoff: float,
        buffer_containers: int,
        concurrent_requests: int,
        cpu_millis: int,
        keep_warm_seconds: float,
        max_containers: int,
        max_delay: float,
        max_pending_tasks: int,
        memory_mib: int,
        min_containers: int,
        retries: int,
        retry_delay_seconds: float,
        scale_down_window: float,
        tasks_per_container: int,
        timeout: float,
        workers: int,
    ) -> None:
        self._init(
            authorized=authorized,
            backoff=backoff,
            buffer_containers=buffer_containers,
            concurrent_requests=concurrent_requests,
            cpu_millis=cpu_millis,
            keep_warm_seconds=keep_warm_seconds,
            max_containers=max_containers,
            max_delay=max_delay,
            max_pending_tasks=max_pending_tasks,
            memory_mib=memory_mib,
            min_containers=min_containers,
            retries=retries,
            retry_delay_seconds=retry_delay_seconds,
            scale_down_window=scale_down_window,
            tasks_per_container=tasks_per_container,
            timeout=timeout,
            workers=workers,
        )


# What a caller waits on: an endpoint (or an ASGI app). Every other kind starts from it.
SERVING = KindDefaults(
    authorized=True,
    backoff=2.0,
    buffer_containers=0,
    concurrent_requests=1,
    cpu_millis=1000,
    keep_warm_seconds=180.0,
    max_containers=4,
    max_delay=60.0,
    max_pending_tasks=1000,
    memory_mib=512,
    min_containers=0,
    retries=0,
    retry_delay_seconds=1.0,
    scale_down_window=0.0,
    tasks_per_container=1,
    timeout=180.0,
    workers=1,
)
# Work that is queued and retried: functions, task queues and schedules.
BATCH = SERVING.replace(timeout=3600.0, retries=3)

KIND_DEFAULTS: Mapping[str, KindDefaults] = MappingProxyType(
    {
        "endpoint": SERVING,
        "asgi": SERVING,
        "function": BATCH.replace(cpu_millis=250),
        "task_queue": BATCH.replace(keep_warm_seconds=10.0),
        "schedule": BATCH,
        # One container per sandbox, kept until its own deadlines (kept by the gateway) end it.
        "sandbox": SERVING.replace(
            keep_warm_seconds=-1.0, timeout=300.0, concurrent_requests=64, min_containers=1, max_containers=1
        ),
    }
)


def defaults_for(kind: str) -> KindDefaults:
    """The defaults of ``kind``; a ``ConfigError`` for a kind Cove does not have."""
    defaults = KIND_DEFAULTS.get(kind) if isinstance(kind, str) else None
    if defaults is None:
        raise ConfigError(f"unknown kind {kind!r}")
    return defaults


def stored(config: Mapping[str, Any], kind: str, name: str) -> Any:
    """Setting ``name`` of a stored deployment config, or its kind's default when the config lacks it.

    A config stored by an older server, or written by hand through the API,
    may leave settings out; readers of the dict form use this instead of a
    fallback of their own.
    """
    value = config.get(name)
    return getattr(defaults_for(kind), name) if value is None else value
