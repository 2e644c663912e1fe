"""Deployments for the worker-operation, quota and multi-host tests: small, with known cpu sizes."""

import os
import time

from cove import QueueDepthAutoscaler, TaskPolicy, endpoint, task_queue


@endpoint(
    cpu=1,
    autoscaler=QueueDepthAutoscaler(min_containers=2, max_containers=2, tasks_per_container=8),
    concurrent_requests=8,
    keep_warm_seconds=-1,
)
def echo(i: int = 0) -> dict[str, object]:
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID")}


@endpoint(
    cpu=1,
    autoscaler=QueueDepthAutoscaler(min_containers=1, max_containers=1, tasks_per_container=8),
    concurrent_requests=8,
    keep_warm_seconds=-1,
)
def single(i: int = 0) -> dict[str, object]:
    time.sleep(0.01)
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID")}


@endpoint(cpu=0.5, autoscaler=QueueDepthAutoscaler(min_containers=0, max_containers=4, tasks_per_container=1))
def half(seconds: float = 0.0) -> dict[str, object]:
    time.sleep(seconds)
    return {"container": os.environ.get("COVE_CONTAINER_ID")}


@task_queue(
    cpu=0.25,
    autoscaler=QueueDepthAutoscaler(min_containers=2, max_containers=2, tasks_per_container=4),
    concurrent_requests=2,
    max_pending_tasks=5000,
    keep_warm_seconds=-1,
    task_policy=TaskPolicy(max_retries=25, retry_delay_seconds=0.05, max_delay=0.5),
)
def square(i: int) -> int:
    time.sleep(0.02)
    return i * i
