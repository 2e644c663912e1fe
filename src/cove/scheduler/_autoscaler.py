"""The scaling rule, kept pure so it can be tested without a server."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .._wire.policies import QueueDepthAutoscaler


@dataclasses.dataclass(frozen=True)
class ContainerLoad:
    """What the rule needs to know about one live container."""

    container_id: str
    in_flight: int
    idle_since: float
    starting: bool


@dataclasses.dataclass(frozen=True)
class ScaleDecision:
    start: int
    stop: tuple[str, ...]


def decide(
    autoscaler: QueueDepthAutoscaler,
    in_flight: int,
    containers: Sequence[ContainerLoad],
    *,
    keep_warm_seconds: float,
    now: float,
) -> ScaleDecision:
    """How many containers to start and which idle ones to stop.

    Scale up to ``desired`` at once; scale down only containers that have had
    nothing to do for ``keep_warm_seconds`` (``-1`` keeps them forever), never
    below ``desired``, and the longest-idle first.
    """
    desired = autoscaler.desired(in_flight)
    live = len(containers)
    if desired > live:
        return ScaleDecision(start=desired - live, stop=())
    if keep_warm_seconds < 0:
        return ScaleDecision(start=0, stop=())
    idle = sorted(
        (c for c in containers if c.in_flight == 0 and not c.starting and now - c.idle_since >= keep_warm_seconds),
        key=lambda c: c.idle_since,
    )
    removable = max(0, live - desired)
    return ScaleDecision(start=0, stop=tuple(c.container_id for c in idle[:removable]))
