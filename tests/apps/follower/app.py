"""What the follower data-plane test deploys: a quick endpoint and a slow one that needs more containers in a burst."""

import os
import time

from cove import QueueDepthAutoscaler, endpoint


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
