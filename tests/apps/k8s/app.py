"""Deployments for the Kubernetes end-to-end test: small cpu sizes that fit the test pool's 500m workers."""

import os
import time

from cove import QueueDepthAutoscaler, TaskPolicy, endpoint, function, task_queue


@endpoint(
    cpu="200m",
    memory=256,
    autoscaler=QueueDepthAutoscaler(min_containers=1, max_containers=1, tasks_per_container=8),
    concurrent_requests=8,
    keep_warm_seconds=-1,
)
def hello(name: str = "k8s", seconds: float = 0) -> dict[str, object]:
    time.sleep(seconds)  # slow calls are in flight when a gateway stops
    return {"hello": name, "container": os.environ.get("COVE_CONTAINER_ID")}


# Two containers of 300m: one fits beside `hello` on the first 500m worker, the second waits in the backlog until
# the pool controller brings a second worker pod.
@endpoint(
    cpu="300m",
    memory=256,
    autoscaler=QueueDepthAutoscaler(min_containers=2, max_containers=2, tasks_per_container=8),
    concurrent_requests=8,
    keep_warm_seconds=-1,
)
def wide(i: int = 0) -> dict[str, object]:
    return {"i": i * 2, "container": os.environ.get("COVE_CONTAINER_ID")}


# The `.map` of step 2: one small container, stopped again before the backlog test needs the room.
@function(cpu="100m", memory=128, autoscaler=QueueDepthAutoscaler(max_containers=1), concurrent_requests=16)
def square(i: int) -> int:
    return i * i


# Tasks that are in flight when a worker pod or the leading gateway goes away: each attempt takes long enough to be
# caught mid-run, and the retries outlast a worker pod's replacement.
@task_queue(
    cpu="200m",
    memory=256,
    autoscaler=QueueDepthAutoscaler(min_containers=1, max_containers=1, tasks_per_container=4),
    concurrent_requests=4,
    keep_warm_seconds=-1,
    max_pending_tasks=5000,
    task_policy=TaskPolicy(max_retries=25, retry_delay_seconds=0.5, max_delay=2),
)
def durable(i: int) -> dict[str, object]:
    time.sleep(0.5)
    return {"square": i * i, "container": os.environ.get("COVE_CONTAINER_ID")}
