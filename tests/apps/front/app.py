"""What the native front's learned limit is tested with: a handler that waits, and one that holds the lock."""

import time

from cove import QueueDepthAutoscaler, endpoint


@endpoint(keep_warm_seconds=300, concurrent_requests=8, autoscaler=QueueDepthAutoscaler(max_containers=1))
def waits(i: int = 0) -> dict:
    """Waits as on I/O, the interpreter's lock released: eight at once take as long as one."""
    time.sleep(0.5)
    return {"i": i}


@endpoint(keep_warm_seconds=300, concurrent_requests=16, autoscaler=QueueDepthAutoscaler(max_containers=1))
def spins(i: int = 0) -> dict:
    """10 ms of plain Python, the lock held: sixteen at once take sixteen times as long as one."""
    end = time.perf_counter() + 0.01
    while time.perf_counter() < end:
        pass
    return {"i": i}
