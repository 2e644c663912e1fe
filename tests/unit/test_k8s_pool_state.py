"""What the pool controller reports about each pool: the API's numbers, the leader's /metrics gauges, and that a
gateway that does not lead hands the read to the leader (which runs the controller) instead of answering empty."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from cove.cluster import served_by_follower
from cove.k8s import ObservedPod, PoolCollector, PoolSpec, Waiting, decide
from cove.k8s._controller import pool_states

NOW = 10_000.0
CPU = PoolSpec("cpu", cpu_millis=2000, memory_mib=4096, min_workers=1, max_workers=4, idle_cooldown_seconds=60)


def pod(name: str, **kw: object) -> ObservedPod:
    fields: dict[str, object] = {"phase": "Running", "created_at": NOW - 600, "registered": True} | kw
    return ObservedPod(name, "cpu", **fields)  # type: ignore[arg-type]


def test_desired_counts_pods_that_stay_plus_those_created() -> None:
    pods = [pod("a", containers=2), pod("b", phase="Pending", registered=False)]
    waiting = [Waiting("cpu", 1500, 1024)] * 3  # three workers' worth: one on the way, two to create
    actions = decide([CPU], pods, waiting, NOW)
    assert [a.kind for a in actions] == ["create", "create"]
    state = pool_states((CPU,), pods, actions)["cpu"]
    assert state == {"min": 1, "max": 4, "desired": 4, "pending": 1, "ready": 1, "draining": 0}


def test_desired_leaves_out_draining_pods_and_those_drained_now() -> None:
    pods = [
        pod("a", idle_since=NOW - 120),  # idle past the cool-down: drained by this pass
        pod("b", containers=1),
        pod("c", admin_state="draining", containers=1),
        pod("d", deleting=True),  # on its way out: not counted at all
    ]
    actions = decide([CPU], pods, [], NOW)
    assert [(a.kind, a.pod) for a in actions] == [("drain", "a")]
    state = pool_states((CPU,), pods, actions)["cpu"]
    assert state == {"min": 1, "max": 4, "desired": 1, "pending": 0, "ready": 2, "draining": 1}


def test_gauges_per_pool_from_the_last_pass_and_none_without_a_controller() -> None:
    states: dict[str, dict[str, int]] = {}
    registry = CollectorRegistry()
    registry.register(PoolCollector(lambda: states))
    assert "cove_worker_pool_ready{" not in generate_latest(registry).decode()
    states["cpu"] = {"min": 1, "max": 4, "desired": 3, "pending": 1, "ready": 2, "draining": 0}
    text = generate_latest(registry).decode()
    for line in (
        'cove_worker_pool_desired{pool="cpu"} 3.0',
        'cove_worker_pool_pending{pool="cpu"} 1.0',
        'cove_worker_pool_ready{pool="cpu"} 2.0',
        'cove_worker_pool_draining{pool="cpu"} 0.0',
        'cove_worker_pool_max{pool="cpu"} 4.0',
    ):
        assert line in text, text


def test_a_follower_hands_the_worker_pools_read_to_the_leader() -> None:
    assert served_by_follower({"method": "GET", "path": "/api/v1/worker-pools", "query_string": b""}) is False
    assert served_by_follower({"method": "GET", "path": "/api/v1/workers", "query_string": b""}) is False
