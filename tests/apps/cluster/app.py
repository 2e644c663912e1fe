"""A task queue for the multi-gateway test: slow enough that its leader dies with most tasks open."""

import time

from cove import QueueDepthAutoscaler, TaskPolicy, task_queue


@task_queue(
    autoscaler=QueueDepthAutoscaler(max_containers=2, tasks_per_container=4),
    concurrent_requests=2,
    max_pending_tasks=5000,
    task_policy=TaskPolicy(max_retries=25, retry_delay_seconds=0.05, max_delay=0.5),
)
def durable(i: int) -> int:
    time.sleep(0.25)
    return i * i


@task_queue(autoscaler=QueueDepthAutoscaler(max_containers=1), max_pending_tasks=3)
def bounded(i: int) -> int:
    time.sleep(2)
    return i
