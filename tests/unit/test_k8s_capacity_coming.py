"""Scale from zero: which waiting containers a Kubernetes worker pool will bring a worker for."""

from __future__ import annotations

from cove.k8s import PoolSpec, Waiting
from cove.k8s._decide import pool_can_grow_for

POOLS = (
    PoolSpec("default", cpu_millis=2000, memory_mib=4096, min_workers=0, max_workers=3),
    PoolSpec("gpu", cpu_millis=8000, memory_mib=65536, gpu_type="H100", gpu_count=1, max_workers=2),
    PoolSpec("off", cpu_millis=2000, memory_mib=4096, max_workers=0),
)


def test_a_pool_that_may_grow_and_is_big_enough_brings_a_worker() -> None:
    assert pool_can_grow_for(POOLS, Waiting("default", 500, 512))
    assert pool_can_grow_for(POOLS, Waiting("gpu", 4000, 16384, gpu_count=1))


def test_too_big_for_the_pool_or_a_pool_that_cannot_grow_fails_at_once() -> None:
    assert not pool_can_grow_for(POOLS, Waiting("default", 4000, 512))  # more cpu than one worker has
    assert not pool_can_grow_for(POOLS, Waiting("default", 500, 512, gpu_count=1))  # no GPU in that pool
    assert not pool_can_grow_for(POOLS, Waiting("off", 500, 512))  # maxWorkers 0
    assert not pool_can_grow_for(POOLS, Waiting("nowhere", 500, 512))  # not a pool of the chart
