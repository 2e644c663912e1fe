"""@batched handlers: an endpoint and a function that take lists and say which batch each item ran in."""

import itertools
import os
import threading

from cove import QueueDepthAutoscaler, batched, endpoint, function

_batches = itertools.count(1)
_lock = threading.Lock()


def _tagged(values: list[int], scale: int) -> list[object]:
    with _lock:
        batch = next(_batches)
    out: list[object] = []
    for v in values:
        if v < 0:
            out.append(ValueError(f"negative input {v}"))
        else:
            out.append({"y": v * scale, "batch": batch, "size": len(values), "pid": os.getpid()})
    return out


@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=1, tasks_per_container=64), concurrent_requests=64)
@batched(max_batch_size=16, wait_ms=250)
def double(x: list[int]) -> list[object]:
    return _tagged(x, 2)


@function(autoscaler=QueueDepthAutoscaler(max_containers=1, tasks_per_container=64))
@batched(max_batch_size=16, wait_ms=250)
def triple(x: list[int]) -> list[object]:
    return _tagged(x, 3)
