"""Functions for the task benchmarks: a no-op and about 5 ms of CPU work.

Each container asks for a whole core (cpu=1): the peers run without quotas, and
``@function``'s default of a quarter core is enforced by the cgroup.
"""

import time

from cove import QueueDepthAutoscaler, TaskPolicy, function, task_queue

SCALE = QueueDepthAutoscaler(max_containers=2, tasks_per_container=64)


@function(autoscaler=SCALE, cpu=1, concurrent_requests=4, max_pending_tasks=100_000)
def noop(i: int) -> int:
    return i


@function(autoscaler=SCALE, cpu=1, concurrent_requests=1, max_pending_tasks=100_000)
def work(i: int) -> int:
    deadline = time.process_time() + 0.005
    total = 0
    while time.process_time() < deadline:
        total += 1
    return i


@task_queue(
    autoscaler=SCALE, cpu=1, concurrent_requests=4, max_pending_tasks=100_000, task_policy=TaskPolicy(max_retries=3)
)
def queued(i: int) -> int:
    return i
