"""How a deployment scales (``QueueDepthAutoscaler``) and how its tasks are retried (``TaskPolicy``).

Both are given by users (``cove.QueueDepthAutoscaler``, ``cove.TaskPolicy``),
stored with the deployment and read back by the scheduler; their defaults are
those of ``cove._wire.defaults``.
"""

from __future__ import annotations

import math

from cove._wire.frozen import Frozen

from ..exceptions import ConfigError
from .defaults import BATCH, SERVING
from .ranges import (
    BACKOFF,
    BUFFER_CONTAINERS,
    MAX_CONTAINERS,
    MAX_DELAY,
    MIN_CONTAINERS,
    RETRIES,
    RETRY_DELAY_SECONDS,
    SCALE_DOWN_WINDOW,
    TASK_TIMEOUT,
    TASK_TTL,
    TASKS_PER_CONTAINER,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class QueueDepthAutoscaler(Frozen):
    """Sets the container count from the work in flight.

    ``desired = ceil(in_flight / tasks_per_container)``, plus
    ``buffer_containers`` while there is any work, clamped to
    ``[min_containers, max_containers]``. Containers stop only when the
    desired count has stayed below the live count for ``scale_down_window``
    seconds (and each has been idle for the deployment's ``keep_warm_seconds``).
    """

    __slots__ = ("buffer_containers", "max_containers", "min_containers", "scale_down_window", "tasks_per_container")
    min_containers: int
    """Containers kept running with no work at all: no cold start for the first calls, at the cost of idling."""
    max_containers: int
    """The most containers at once; work beyond what they take waits in the queue."""
    tasks_per_container: int
    """In-flight inputs per container the autoscaler aims for; fewer means more, emptier containers."""
    buffer_containers: int
    """Idle containers kept ready ahead of demand while there is work, so a burst finds them warm."""
    scale_down_window: float
    """Seconds the wanted count must stay low before containers stop: a dip in traffic keeps its containers."""

    def __init__(
        self,
        min_containers: int = SERVING.min_containers,
        max_containers: int = SERVING.max_containers,
        tasks_per_container: int = SERVING.tasks_per_container,
        buffer_containers: int = SERVING.buffer_containers,
        scale_down_window: float = SERVING.scale_down_window,
    ) -> None:
        self._init(
            min_containers=MIN_CONTAINERS.check("min_containers", min_containers),
            max_containers=MAX_CONTAINERS.check("max_containers", max_containers),
            tasks_per_container=TASKS_PER_CONTAINER.check("tasks_per_container", tasks_per_container),
            buffer_containers=BUFFER_CONTAINERS.check("buffer_containers", buffer_containers),
            scale_down_window=SCALE_DOWN_WINDOW.check("scale_down_window", scale_down_window),
        )
        if self.min_containers > self.max_containers:
            raise ConfigError(f"min_containers ({self.min_containers}) exceeds max_containers ({self.max_containers})")

    def desired(self, in_flight: int) -> int:
        """How many containers the given number of in-flight inputs asks for."""
        wanted = math.ceil(max(in_flight, 0) / self.tasks_per_container)
        if wanted:
            wanted += self.buffer_containers
        return max(self.min_containers, min(self.max_containers, wanted))

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}


class TaskPolicy(Frozen):
    """How a task is retried, timed out and expired.

    Attempt ``n`` (from 1) that fails waits
    ``min(max_delay, retry_delay_seconds * backoff ** (n - 1))``, with ±20 %
    jitter, before the next. ``retry_for`` limits retries to those exception
    types (matched by class name along the exception's hierarchy); empty means
    every error. ``timeout`` kills an attempt; ``ttl`` expires a task that was
    never picked up.
    """

    __slots__ = ("backoff", "max_delay", "max_retries", "retry_delay_seconds", "retry_for", "timeout", "ttl")
    backoff: float
    """Each wait after the first is this many times the one before (with ±20 % jitter)."""
    max_delay: float
    """The longest wait between two attempts, however many have failed."""
    max_retries: int
    """Attempts after a failed first one; given without the option ``retries``, it sets that too."""
    retry_delay_seconds: float
    """The wait after the first failed attempt."""
    retry_for: tuple[str, ...]
    """Exception types (or their names) worth another attempt; left empty, every error is."""
    timeout: float | None
    """Seconds one attempt may run; left out, only the deployment's ``timeout`` limits it."""
    ttl: float | None
    """Seconds a task may wait to be picked up before it ends ``EXPIRED``; left out, it never expires."""

    def __init__(
        self,
        max_retries: int = BATCH.retries,
        retry_delay_seconds: float = BATCH.retry_delay_seconds,
        backoff: float = BATCH.backoff,
        max_delay: float = BATCH.max_delay,
        timeout: float | None = None,
        ttl: float | None = None,
        retry_for: tuple[Any, ...] | list[Any] = (),
    ) -> None:
        self._init(
            backoff=BACKOFF.check("backoff", backoff),
            max_delay=MAX_DELAY.check("max_delay", max_delay),
            max_retries=RETRIES.check("max_retries", max_retries),
            retry_delay_seconds=RETRY_DELAY_SECONDS.check("retry_delay_seconds", retry_delay_seconds),
            retry_for=tuple(_exception_name(item) for item in retry_for),
            timeout=None if timeout is None else TASK_TIMEOUT.check("task_policy timeout", timeout),
            ttl=None if ttl is None else TASK_TTL.check("ttl", ttl),
        )

    def delay(self, attempt: int, jitter: float = 1.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); ``jitter`` in [0.8, 1.2]."""
        return min(self.max_delay, self.retry_delay_seconds * self.backoff ** max(0, attempt - 1)) * jitter

    def retries_on(self, exception_hierarchy: list[str]) -> bool:
        return not self.retry_for or any(name in self.retry_for for name in exception_hierarchy)

    def to_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in self.__slots__}


def _exception_name(item: object) -> str:
    if isinstance(item, type) and issubclass(item, BaseException):
        return item.__name__
    if isinstance(item, str) and item.isidentifier():
        return item
    raise ConfigError(f"retry_for must list exception types, and {item!r} is not one")
