"""The metrics a handler defines with ``prometheus_client``, exposed on the gateway's ``/metrics``.

Each container's runner posts its registry, in Prometheus' text format, to
``POST /api/v1/containers/{id}/metrics`` (``cove.runner._metrics``: when it
changed, at least every minute, and once more as it stops). The gateway keeps
the last text of each container and serves its series with four labels added:
``workspace``, ``deployment``, ``version`` and ``container``. A container's
series stay after it exits, for ``KEEP_SECONDS`` after its last post, so a
counter's final value is scraped; ``sum by (deployment)`` adds up containers.
Families named ``cove_*`` are the gateway's own and are not taken from a
container.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

KEEP_SECONDS = 600.0  # a container's last values, after its last post (it exited, or its gateway restarted)
OWN_PREFIX = "cove_"


@dataclasses.dataclass(frozen=True)
class _Posted:
    workspace: str
    deployment: str
    version: int
    families: tuple[Metric, ...]
    at: float


class UserMetrics:
    """The containers' last posted registries, as one Prometheus collector."""

    def __init__(self) -> None:
        self._by_container: dict[str, _Posted] = {}

    def post(self, container_id: str, workspace: str, deployment: str, version: int, text: str) -> None:
        """Keep a container's registry (raises ``ValueError`` for text that is not Prometheus' format)."""
        families = tuple(f for f in text_string_to_metric_families(text) if not f.name.startswith(OWN_PREFIX))
        self._by_container[container_id] = _Posted(workspace, deployment, version, families, time.time())

    def collect(self) -> Iterator[Metric]:
        cutoff = time.time() - KEEP_SECONDS
        for container_id in [c for c, p in self._by_container.items() if p.at < cutoff]:
            self._by_container.pop(container_id, None)
        merged: dict[tuple[str, str], Metric] = {}
        for container_id, posted in list(self._by_container.items()):
            extra = {
                "workspace": posted.workspace,
                "deployment": posted.deployment,
                "version": str(posted.version),
                "container": container_id,
            }
            for family in posted.families:
                key = (family.name, family.type)
                out = merged.get(key)
                if out is None:
                    out = merged[key] = Metric(family.name, family.documentation, family.type, family.unit)
                out.samples.extend(
                    Sample(s.name, {**s.labels, **extra}, s.value, s.timestamp, s.exemplar) for s in family.samples
                )
        yield from merged.values()
