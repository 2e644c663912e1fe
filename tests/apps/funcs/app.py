"""Functions and task queues the end-to-end tests deploy."""

import os
import time

from cove import QueueDepthAutoscaler, TaskPolicy, function, task_queue


class Custom(Exception):
    """An exception of the user's own, raised in the container and re-raised in the caller."""


@function
def square(i: int) -> int:
    return i * i


@function(autoscaler=QueueDepthAutoscaler(max_containers=2, tasks_per_container=50))
def busy(i: int) -> tuple[int, str]:
    deadline = time.perf_counter() + 0.002
    while time.perf_counter() < deadline:
        pass
    return i, os.environ.get("COVE_CONTAINER_ID", "")


@function(retries=0)
def fails(message: str) -> None:
    raise Custom(message)


_seen: set[str] = set()


@task_queue(
    task_policy=TaskPolicy(max_retries=2, retry_delay_seconds=0.05),
    autoscaler=QueueDepthAutoscaler(max_containers=1),
)
def flaky(key: str) -> dict[str, str]:
    """Fails the first time a container sees ``key``, then succeeds."""
    if key not in _seen:
        _seen.add(key)
        raise ConnectionError(f"transient failure for {key}")
    return {"key": key, "status": "done"}


@task_queue(task_policy=TaskPolicy(max_retries=1, retry_delay_seconds=0.05, retry_for=[ConnectionError]))
def picky(kind: str) -> None:
    if kind == "connection":
        raise ConnectionError("network blip")
    raise ValueError("bad input, retrying will not help")


@function(timeout=1, retries=0)
def hang(seconds: float = 10.0) -> float:
    time.sleep(seconds)
    return seconds


@task_queue(
    autoscaler=QueueDepthAutoscaler(max_containers=1),
    max_pending_tasks=3,
    task_policy=TaskPolicy(max_retries=0, ttl=0.5),
)
def slow_queue(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
