"""A task queue for the chaos tests: every run of a task appends its input to a ledger in a volume.

The ledger counts side effects, which the store cannot: a task that ran twice
but had its result recorded once shows up here twice.
"""

import os
import time

from cove import QueueDepthAutoscaler, TaskPolicy, Volume, task_queue

LEDGER = Volume("chaos-ledger", "/ledger")


def _ledger_dir() -> str:
    """The mount path in an isolated container; the host folder under the process engine."""
    if os.path.isdir(LEDGER.mount_path):
        return LEDGER.mount_path
    return os.environ["COVE_VOLUME_CHAOS_LEDGER"]


@task_queue(
    autoscaler=QueueDepthAutoscaler(max_containers=2, tasks_per_container=4),
    concurrent_requests=2,
    max_pending_tasks=5000,
    task_policy=TaskPolicy(max_retries=25, retry_delay_seconds=0.05, max_delay=0.5),
    volumes=[LEDGER],
)
def chaos(i: int) -> int:
    time.sleep(0.05)
    with open(os.path.join(_ledger_dir(), "runs.log"), "a") as ledger:
        ledger.write(f"{i}\n")  # one short O_APPEND write: lines from concurrent runs never interleave
    return i * i
