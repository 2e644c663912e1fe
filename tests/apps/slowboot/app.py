"""An endpoint that takes a second to load, to show requests queue while it boots."""

import os
import time

from cove import QueueDepthAutoscaler, endpoint, env

if env.is_remote():
    time.sleep(1.0)


@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=1), concurrent_requests=1)
def slowboot(i: int) -> dict[str, int]:
    return {"i": i, "pid": os.getpid()}
