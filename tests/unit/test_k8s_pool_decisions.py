"""The pool controller's decisions (cove.k8s._decide): a pure function, so every rule is checked here."""

from __future__ import annotations

from cove.k8s import ObservedPod, PoolSpec, Waiting, decide
from cove.k8s._decide import workers_needed

NOW = 10_000.0
GPU = PoolSpec("gpu", cpu_millis=8000, memory_mib=32768, gpu_type="H100", gpu_count=2, min_workers=0, max_workers=3)
CPU = PoolSpec("cpu", cpu_millis=2000, memory_mib=4096, min_workers=1, max_workers=2, idle_cooldown_seconds=60)


def pod(name: str, pool: str = "cpu", **kw: object) -> ObservedPod:
    fields: dict[str, object] = {"phase": "Running", "created_at": NOW - 600, "registered": True} | kw
    return ObservedPod(name, pool, **fields)  # type: ignore[arg-type]


def kinds(actions: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(a.kind, a.pod) for a in actions]


def test_backlog_creates_a_worker_with_its_reason() -> None:
    actions = decide([CPU], [pod("a", containers=2)], [Waiting("cpu", 1000, 1024)], NOW)
    assert kinds(actions) == [("create", None)]
    assert "1 container(s) wait in the backlog" in actions[0].reason


def test_pending_pods_count_as_capacity_on_the_way() -> None:
    """A pod without a node yet (what makes a cluster autoscaler add one) is not doubled: no stampede."""
    pods = [pod("a", containers=2), pod("b", phase="Pending", registered=False)]
    assert decide([CPU], pods, [Waiting("cpu", 1000, 1024)], NOW) == []


def test_never_more_than_max_workers() -> None:
    waiting = [Waiting("gpu", 1000, 1024, gpu_count=2)] * 10
    assert len(decide([GPU], [], waiting, NOW)) == 3
    pods = [pod(n, "gpu", containers=1) for n in "ab"]
    assert kinds(decide([GPU], pods, waiting, NOW)) == [("create", None)]
    pods.append(pod("c", "gpu", containers=1))
    assert decide([GPU], pods, waiting, NOW) == []


def test_draining_pods_count_against_max() -> None:
    pods = [pod("a", containers=1), pod("b", admin_state="draining", containers=1)]
    assert decide([CPU], pods, [Waiting("cpu", 500, 512)], NOW) == []


def test_a_container_no_worker_of_the_pool_can_hold_adds_nothing() -> None:
    assert decide([CPU], [pod("a")], [Waiting("cpu", 64_000, 1024)], NOW) == []
    assert decide([GPU], [], [Waiting("gpu", 1000, 1024, gpu_count=4)], NOW) == []


def test_min_workers_is_kept() -> None:
    actions = decide([CPU], [], [], NOW)
    assert kinds(actions) == [("create", None)]
    assert "below minWorkers" in actions[0].reason


def test_idle_workers_are_drained_after_the_cool_down_down_to_min() -> None:
    pods = [pod("a", idle_since=NOW - 120), pod("b", idle_since=NOW - 90)]
    actions = decide([CPU], pods, [], NOW)
    assert kinds(actions) == [("drain", "a")]  # the longest idle; b stays as the floor
    assert "cool-down 60 s" in actions[0].reason
    assert decide([CPU], [pod("a", idle_since=NOW - 30), pod("b", idle_since=NOW - 30)], [], NOW) == []


def test_no_scale_down_while_work_waits() -> None:
    pods = [pod("a", idle_since=NOW - 120), pod("b", containers=2)]
    assert all(a.kind != "drain" for a in decide([CPU], pods, [Waiting("cpu", 1800, 1024)], NOW))


def test_drained_workers_are_deleted_once_empty() -> None:
    pods = [pod("a", containers=1), pod("b", admin_state="draining", containers=1)]
    assert decide([CPU], pods, [], NOW) == []
    pods[1] = pod("b", admin_state="draining", containers=0)
    assert kinds(decide([CPU], pods, [], NOW)) == [("delete", "b")]


def test_a_dead_worker_pod_is_deleted_and_replaced() -> None:
    pods = [pod("a", phase="Failed", registered=False)]
    assert kinds(decide([CPU], pods, [], NOW)) == [("delete", "a"), ("create", None)]


def test_pods_being_deleted_are_ignored() -> None:
    pods = [pod("a", containers=1), pod("b", deleting=True)]
    assert decide([CPU], pods, [], NOW) == []


def test_pools_are_decided_apart() -> None:
    actions = decide([CPU, GPU], [pod("a", containers=2)], [Waiting("gpu", 1000, 1000, gpu_count=1)], NOW)
    assert {a.pool for a in actions} == {"gpu"}


def test_packing_of_the_backlog() -> None:
    assert workers_needed(CPU, [Waiting("cpu", 1000, 1024)] * 4) == 2
    assert workers_needed(CPU, [Waiting("cpu", 1500, 1024), Waiting("cpu", 500, 1024)]) == 1
    assert workers_needed(GPU, [Waiting("gpu", 100, 100, gpu_count=1)] * 3) == 2
