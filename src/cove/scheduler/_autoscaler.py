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
    """Containers to start, containers to stop, and why, in words an operator reads in the logs.

    ``desired``, ``live``, ``in_flight`` and ``floor`` are the numbers the decision
    was taken on; the event log keeps them beside the reason.
    """

    start: int
    stop: tuple[str, ...]
    reason: str = ""
    desired: int = dataclasses.field(default=0, compare=False)
    live: int = dataclasses.field(default=0, compare=False)
    in_flight: int = dataclasses.field(default=0, compare=False)
    floor: int = dataclasses.field(default=0, compare=False)

    def inputs(self) -> dict[str, int]:
        """The numbers behind the decision, by name."""
        return {"desired": self.desired, "live": self.live, "in_flight": self.in_flight, "floor": self.floor}


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

    def made(start: int, stop: tuple[str, ...], reason: str = "") -> ScaleDecision:
        return ScaleDecision(start, stop, reason, desired=desired, live=live, in_flight=in_flight, floor=floor)

    wanted = f"{in_flight} in flight want {desired} container(s)"
    if desired > live:
        return made(desired - live, (), f"{wanted}, {live} live")
    if keep_warm_seconds < 0:
        return made(0, ())
    idle = sorted(
        (c for c in containers if c.in_flight == 0 and not c.starting and now - c.idle_since >= keep_warm_seconds),
        key=lambda c: c.idle_since,
    )
    removable = max(0, live - floor)
    stop = tuple(c.container_id for c in idle[:removable])
    if not stop:
        return made(0, ())
    held = f"; {floor} wanted within the last {autoscaler.scale_down_window:g} s" if floor > desired else ""
    return made(0, stop, f"{wanted}{held}, {live} live: idle past keep_warm_seconds ({keep_warm_seconds:g} s)")
