"""A handler that imports nothing: measures the platform, not the user's code."""

from cove import QueueDepthAutoscaler, endpoint


@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=1), concurrent_requests=32)
def echo(x: object = None) -> dict[str, object]:
    return {"x": x}
