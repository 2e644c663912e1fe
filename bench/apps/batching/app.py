"""A model-like handler, batched and not: 5 ms per forward pass plus 0.1 ms per item, one pass at a time.

The lock stands for the one accelerator a container has: passes run one after
another, so throughput comes from how many items each pass carries.
"""

import threading
import time

from cove import QueueDepthAutoscaler, batched, endpoint

_device = threading.Lock()
FIXED_S = 0.005
PER_ITEM_S = 0.0001
ONE_CONTAINER = QueueDepthAutoscaler(max_containers=1, tasks_per_container=64)


def _forward(items: int) -> None:
    with _device:
        time.sleep(FIXED_S + PER_ITEM_S * items)


@endpoint(autoscaler=ONE_CONTAINER, concurrent_requests=64)
def single(x: int) -> int:
    _forward(1)
    return x * 2


@endpoint(autoscaler=ONE_CONTAINER, concurrent_requests=64)
@batched(max_batch_size=32, wait_ms=5)
def gathered(x: list[int]) -> list[int]:
    _forward(len(x))
    return [v * 2 for v in x]
