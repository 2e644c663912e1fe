"""What the follower data-plane test deploys: a quick endpoint and a slow one that needs more containers in a burst."""

import os
import time

from cove import QueueDepthAutoscaler, endpoint, function


@endpoint(keep_warm_seconds=300)
def echo(i: int = 0) -> dict:
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def slow(i: int = 0) -> dict:
    time.sleep(0.5)
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


def _cold(i: int) -> dict:
    time.sleep(0.5)
    return {"i": i, "container": os.environ.get("COVE_CONTAINER_ID", "")}


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def cold_leader(i: int = 0) -> dict:
    """Deployed cold, then hit by a burst through the leader: the containers a burst from zero starts there."""
    return _cold(i)


@endpoint(
    keep_warm_seconds=300,
    concurrent_requests=1,
    autoscaler=QueueDepthAutoscaler(max_containers=3, tasks_per_container=1),
)
def cold_follower(i: int = 0) -> dict:
    """The same, through the follower: it must start as many."""
    return _cold(i)


@endpoint(cpu=16)
def huge(i: int = 0) -> dict:
    """More cores than any worker has (deployed with --force): every call is a 503 NoCapacity."""
    return {"i": i}


@function
def square(i: int) -> int:
    """Called with ``.remote`` and ``.map`` through the follower: committed there, run by the leader's dispatch.

    A negative number fails: how a map's failed input travels back.
    """
    if i < 0:
        raise ValueError(f"negative: {i}")
    return i * i
