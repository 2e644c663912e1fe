"""The scaling rule, kept pure so it can be tested without a server."""

from __future__ import annotations

import collections
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
    """Containers to start, containers to stop, and why, in words an operator reads in the logs."""

    start: int
    stop: tuple[str, ...]
    reason: str = ""


@dataclasses.dataclass
class DesiredHistory:
    """The counts the rule wanted over the last moments, so a scale-down can wait out a window.

    Kept by the scheduler per deployment version; :func:`decide` reads only the peak.
    """

    samples: collections.deque[tuple[float, int]] = dataclasses.field(default_factory=collections.deque)

    def peak(self, now: float, desired: int, window: float) -> int:
        """Record ``desired`` at ``now`` and return the largest count wanted in the last ``window`` seconds."""
        self.samples.append((now, desired))
        # A count holds until the next sample, so the one in force when the window began still counts.
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        return max(count for _, count in self.samples)


def decide(
    autoscaler: QueueDepthAutoscaler,
    in_flight: int,
    containers: Sequence[ContainerLoad],
    *,
    keep_warm_seconds: float,
    now: float,
    history: DesiredHistory | None = None,
) -> ScaleDecision:
    """How many containers to start and which idle ones to stop.

    Scale up to ``desired`` at once; scale down only containers that have had
    nothing to do for ``keep_warm_seconds`` (``-1`` keeps them forever), never
    below the most ``desired`` was within the autoscaler's ``scale_down_window``,
    and the longest-idle first.
    """
    desired = autoscaler.desired(in_flight)
    floor = history.peak(now, desired, autoscaler.scale_down_window) if history is not None else desired
    live = len(containers)
    wanted = f"{in_flight} in flight want {desired} container(s)"
    if desired > live:
        return ScaleDecision(start=desired - live, stop=(), reason=f"{wanted}, {live} live")
    if keep_warm_seconds < 0:
        return ScaleDecision(start=0, stop=())
    idle = sorted(
        (c for c in containers if c.in_flight == 0 and not c.starting and now - c.idle_since >= keep_warm_seconds),
        key=lambda c: c.idle_since,
    )
    removable = max(0, live - floor)
    stop = tuple(c.container_id for c in idle[:removable])
    if not stop:
        return ScaleDecision(start=0, stop=())
    held = f"; {floor} wanted within the last {autoscaler.scale_down_window:g} s" if floor > desired else ""
    return ScaleDecision(
        start=0, stop=stop, reason=f"{wanted}{held}, {live} live: idle past keep_warm_seconds ({keep_warm_seconds:g} s)"
    )
