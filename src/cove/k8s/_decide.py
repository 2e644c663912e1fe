"""Every scaling decision of the pool controller, as one pure function of what it observed.

Kept apart from the API calls so each rule (never above maxWorkers, Pending pods count as capacity on the way,
drain before delete, keep minWorkers) is tested without a cluster, and so each decision carries its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Literal

from ._config import PoolSpec

ENDED_PHASES = frozenset({"Failed", "Succeeded"})


@dataclasses.dataclass(frozen=True)
class ObservedPod:
    """A worker pod of a pool as the API server and the scheduler see it now."""

    name: str
    pool: str
    phase: str  # the pod's phase: Pending, Running, Succeeded, Failed, Unknown
    created_at: float
    deleting: bool = False  # has a deletionTimestamp: already on its way out
    registered: bool = False  # its worker is connected to the scheduler (ready)
    admin_state: str = "active"  # the worker's: active, cordoned or draining
    containers: int = 0  # containers the scheduler has on it
    idle_since: float | None = None  # when the controller first saw it with no container (None: busy)


@dataclasses.dataclass(frozen=True)
class Waiting:
    """A container in the backlog, waiting for room in a pool."""

    pool: str
    cpu_millis: int
    memory_mib: int
    gpu_count: int = 0


@dataclasses.dataclass(frozen=True)
class Action:
    """One step for the controller to take, with the reason it logs."""

    kind: Literal["create", "drain", "delete"]
    pool: str
    reason: str
    pod: str | None = None  # None for create


def fits(spec: PoolSpec, need: Waiting) -> bool:
    """Whether one worker of the pool could ever hold the container (else adding workers never helps)."""
    return (
        need.cpu_millis <= spec.cpu_millis and need.memory_mib <= spec.memory_mib and need.gpu_count <= spec.gpu_count
    )


def pool_can_grow_for(pools: Sequence[PoolSpec], need: Waiting) -> bool:
    """Whether the controller would bring a worker that holds ``need``: its pool may have workers (maxWorkers
    above 0) and one of them is big enough. Calls of such a deployment wait instead of failing with 503."""
    return any(spec.name == need.pool and spec.max_workers > 0 and fits(spec, need) for spec in pools)


def workers_needed(spec: PoolSpec, needs: Iterable[Waiting]) -> int:
    """How many empty workers of the pool hold these containers (first fit, largest first)."""
    bins: list[list[int]] = []  # free cpu, memory, gpus per new worker
    for need in sorted(needs, key=lambda n: (n.gpu_count, n.memory_mib, n.cpu_millis), reverse=True):
        for room in bins:
            if room[0] >= need.cpu_millis and room[1] >= need.memory_mib and room[2] >= need.gpu_count:
                room[0] -= need.cpu_millis
                room[1] -= need.memory_mib
                room[2] -= need.gpu_count
                break
        else:
            bins.append(
                [spec.cpu_millis - need.cpu_millis, spec.memory_mib - need.memory_mib, spec.gpu_count - need.gpu_count]
            )
    return len(bins)


def decide_pool(spec: PoolSpec, pods: Sequence[ObservedPod], waiting: Sequence[Waiting], now: float) -> list[Action]:
    """The actions for one pool."""
    actions: list[Action] = []
    present = [p for p in pods if not p.deleting]
    for pod in present:
        if pod.phase in ENDED_PHASES:
            actions.append(
                Action("delete", spec.name, f"pod ended ({pod.phase}); a new one replaces it if needed", pod.name)
            )
    live = [p for p in present if p.phase not in ENDED_PHASES]
    draining = [p for p in live if p.admin_state == "draining"]
    for pod in draining:
        if pod.containers == 0 or not pod.registered:
            actions.append(Action("delete", spec.name, "drained: no container left on it", pod.name))
    active = [p for p in live if p.admin_state != "draining"]
    on_the_way = [p for p in active if not p.registered]
    room = max(0, spec.max_workers - len(live))

    holdable = [w for w in waiting if fits(spec, w)]
    create = 0
    if holdable:
        needed = workers_needed(spec, holdable)
        create = min(max(0, needed - len(on_the_way)), room)
        reason = (
            f"{len(holdable)} container(s) wait in the backlog and need {needed} worker(s); "
            f"{len(on_the_way)} on the way; {len(live)} of at most {spec.max_workers} exist"
        )
        actions.extend(Action("create", spec.name, reason) for _ in range(create))
    floor = min(max(0, spec.min_workers - (len(active) + create)), room - create)
    actions.extend(
        Action("create", spec.name, f"below minWorkers ({len(active)} of {spec.min_workers})") for _ in range(floor)
    )
    if not holdable:
        actions.extend(_scale_down(spec, active, now))
    return actions


def _scale_down(spec: PoolSpec, active: Sequence[ObservedPod], now: float) -> list[Action]:
    """Drain workers idle past the cool-down, oldest idle first, down to minWorkers."""
    idle = [
        p
        for p in active
        if p.registered
        and p.containers == 0
        and p.idle_since is not None
        and now - p.idle_since >= spec.idle_cooldown_seconds
    ]
    idle.sort(key=lambda p: (p.idle_since or now, p.name))
    spare = max(0, len(active) - spec.min_workers)
    return [
        Action(
            "drain",
            spec.name,
            f"idle for {now - (p.idle_since or now):.0f} s (cool-down {spec.idle_cooldown_seconds:.0f} s)",
            p.name,
        )
        for p in idle[:spare]
    ]


def decide(
    pools: Sequence[PoolSpec], pods: Sequence[ObservedPod], waiting: Sequence[Waiting], now: float
) -> list[Action]:
    """The actions for every pool; pods and waiting containers of unknown pools are left alone."""
    actions: list[Action] = []
    for spec in pools:
        actions.extend(
            decide_pool(
                spec, [p for p in pods if p.pool == spec.name], [w for w in waiting if w.pool == spec.name], now
            )
        )
    return actions
