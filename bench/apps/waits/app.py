"""A handler that waits 20 ms as if on I/O (the interpreter's lock released): its calls gain from concurrency."""

import time

from cove import QueueDepthAutoscaler, endpoint


@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=1), concurrent_requests=32)
def wait(x: object = None) -> dict[str, object]:
    time.sleep(0.02)
    return {"x": x}
