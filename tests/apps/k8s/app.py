"""Deployments for the Kubernetes end-to-end test: small cpu sizes that fit the test pool's 500m workers."""

import os

from cove import QueueDepthAutoscaler, endpoint


@endpoint(
    cpu="200m",
    memory=256,
    autoscaler=QueueDepthAutoscaler(min_containers=1, max_containers=1, tasks_per_container=8),
    concurrent_requests=8,
    keep_warm_seconds=-1,
)
def hello(name: str = "k8s") -> dict[str, object]:
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
