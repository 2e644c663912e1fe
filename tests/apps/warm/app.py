"""An endpoint that keeps one container warm from the moment it is deployed."""

from cove import QueueDepthAutoscaler, endpoint

VERSION = 1


@endpoint(autoscaler=QueueDepthAutoscaler(min_containers=1, max_containers=2), keep_warm_seconds=1)
def warm() -> dict[str, int]:
    return {"version": VERSION}
