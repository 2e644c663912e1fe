"""The requests other gateways hold, as they report them to the leader: demand for the autoscaler, load per container.

Each gateway that does not lead relays invocations to containers itself and
reports, several times a second, how many requests it holds per deployment
and runs per container (:class:`cove._wire.peers.DemandReport`). The leader
adds them to its own counts. A gateway that stops reporting (it died, it lost
the leader) is forgotten after ``expire_seconds``, so its last figures do not
hold containers up forever.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from .._wire.peers import DemandReport

EXPIRE_SECONDS = 1.0


class RemoteLoad:
    """The latest report of each gateway, summed."""

    def __init__(self, expire_seconds: float = EXPIRE_SECONDS) -> None:
        self.expire_seconds = expire_seconds
        self._reports: dict[str, tuple[float, DemandReport]] = {}

    def record(self, report: DemandReport, now: float | None = None) -> None:
        self._reports[report.gateway_id] = (now if now is not None else time.monotonic(), report)

    def add(self, gateway_id: str, deployment_id: str, waiting: int, now: float | None = None) -> None:
        """A gateway's cold requests for one deployment, between its reports: they count at once."""
        at = now if now is not None else time.monotonic()
        last = self._reports.get(gateway_id)
        if last is None:
            report = DemandReport(gateway_id=gateway_id, deployments={deployment_id: waiting}, containers={})
        else:
            held = last[1].deployments
            deployments = {**held, deployment_id: max(waiting, held.get(deployment_id, 0))}
            report = dataclasses.replace(last[1], deployments=deployments)
        self._reports[gateway_id] = (at, report)

    def expire(self, now: float | None = None) -> bool:
        """Forget the reports that are too old; True when one was forgotten (the sums changed)."""
        limit = (now if now is not None else time.monotonic()) - self.expire_seconds
        old = [gateway for gateway, (at, _) in self._reports.items() if at < limit]
        for gateway in old:
            del self._reports[gateway]
        return bool(old)

    def deployments(self) -> dict[str, int]:
        """Requests held elsewhere per deployment version (waiting for a container or running)."""
        return self._sum(lambda report: report.deployments)

    def containers(self, but: str | None = None) -> dict[str, int]:
        """Requests running elsewhere per container, leaving out the gateway ``but``.

        A container a report lists with 0 is in the result too: it was used since that report.
        """
        return self._sum(lambda report: report.containers, but)

    def _sum(self, part: Callable[[DemandReport], dict[str, int]], but: str | None = None) -> dict[str, int]:
        totals: dict[str, int] = {}
        for gateway, (_, report) in self._reports.items():
            if gateway == but:
                continue
            for key, count in part(report).items():
                totals[key] = totals.get(key, 0) + count
        return totals
