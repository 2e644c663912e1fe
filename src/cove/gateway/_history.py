"""The last hour of each deployment's requests, latency, errors and cold starts, for the dashboard's charts.

Nothing is added to the request path: every ``BUCKET_SECONDS`` a background task
reads what the Prometheus metrics already counted (``cove_invocations_total``,
``cove_invocation_seconds``) and the scheduler's containers, and stores the
difference since the last read in a fixed-size ring per deployment. Memory is
bounded by design: ``BUCKETS`` slots of a few numbers per deployment that was
called or started a container, and a deployment idle for a whole ring is
forgotten. Longer history is Prometheus' job (it scrapes ``/metrics``).

Each gateway keeps what it served: with several gateways, a follower's history
holds the requests it relayed itself.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import math
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BUCKET_SECONDS = 10
BUCKETS = 360  # an hour
ERROR_STATUS = 500  # answers at or above this count as errors (the caller's own mistakes, 4xx, do not)

Key = tuple[str, str]  # (workspace name, deployment name): every version of the name together


def _deployment_name(label: str) -> str:
    """``name`` of a ``name/v3`` label."""
    return label.rsplit("/v", 1)[0]


class Ring:
    """One deployment's buckets: slot ``i`` holds the bucket that began at ``starts[i]`` (0: never written)."""

    def __init__(self) -> None:
        self.starts = array("d", bytes(8 * BUCKETS))
        self.requests = array("q", bytes(8 * BUCKETS))
        self.errors = array("q", bytes(8 * BUCKETS))
        self.cold_starts = array("q", bytes(8 * BUCKETS))
        self.p50 = array("d", bytes(8 * BUCKETS))
        self.p99 = array("d", bytes(8 * BUCKETS))
        self.last_written = 0.0

    def add(self, start: float, requests: int, errors: int, cold_starts: int, p50: float, p99: float) -> None:
        i = int(start // BUCKET_SECONDS) % BUCKETS
        if self.starts[i] != start:  # a slot of an hour ago: reuse it
            self.starts[i] = start
            self.requests[i] = self.errors[i] = self.cold_starts[i] = 0
            self.p50[i] = self.p99[i] = 0.0
        self.requests[i] += requests
        self.errors[i] += errors
        self.cold_starts[i] += cold_starts
        # Two reads in one bucket (a late tick): the worse latency of the two stands for the bucket.
        self.p50[i] = max(self.p50[i], p50)
        self.p99[i] = max(self.p99[i], p99)
        self.last_written = start

    def view(self, now: float) -> dict[str, Any]:
        """The hour up to ``now``, oldest bucket first; latency is null in a bucket without requests."""
        last = math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS - BUCKET_SECONDS  # the newest complete bucket
        first = last - (BUCKETS - 1) * BUCKET_SECONDS
        rps: list[float] = []
        errors: list[int] = []
        cold: list[int] = []
        p50: list[float | None] = []
        p99: list[float | None] = []
        for n in range(BUCKETS):
            start = first + n * BUCKET_SECONDS
            i = int(start // BUCKET_SECONDS) % BUCKETS
            if self.starts[i] == start:
                count = self.requests[i]
                rps.append(round(count / BUCKET_SECONDS, 3))
                errors.append(self.errors[i])
                cold.append(self.cold_starts[i])
                p50.append(round(self.p50[i] * 1000, 2) if count else None)
                p99.append(round(self.p99[i] * 1000, 2) if count else None)
            else:
                rps.append(0.0)
                errors.append(0)
                cold.append(0)
                p50.append(None)
                p99.append(None)
        return {
            "bucket_seconds": BUCKET_SECONDS,
            "start": first,
            "requests_per_second": rps,
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": errors,
            "cold_starts": cold,
        }


def quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """The ``q`` quantile of a histogram's bucket counts (not cumulative), interpolated in its bucket.

    As Prometheus' ``histogram_quantile``: the last bucket (+Inf) answers its lower bound.
    """
    total = sum(counts)
    if total <= 0:
        return 0.0
    rank = q * total
    seen = 0.0
    for n, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            lower = bounds[n - 1] if n else 0.0
            if n >= len(bounds) or math.isinf(bounds[n]):
                return lower
            return lower + (bounds[n] - lower) * ((rank - seen) / count)
        seen += count
    return bounds[-2] if len(bounds) > 1 else 0.0


@dataclasses.dataclass
class _Totals:
    """One label set's cumulative counts at the last read."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: list[float] = dataclasses.field(default_factory=list)  # cumulative, per ``le``


class MetricsHistory:
    """Reads the gateway's counters every ``BUCKET_SECONDS`` into a ring per deployment."""

    def __init__(self, invocations: Collector, latency: Collector) -> None:
        self._invocations = invocations
        self._latency = latency
        self._totals: dict[tuple[str, str], _Totals] = {}
        self._seen_containers: set[str] = set()
        self.rings: dict[Key, Ring] = {}

    def get(self, workspace: str, name: str, now: float | None = None) -> dict[str, Any] | None:
        ring = self.rings.get((workspace, name))
        return None if ring is None else ring.view(time.time() if now is None else now)

    def sample(self, now: float, containers: Iterable[tuple[str, str, str]] = ()) -> None:
        """Store what happened since the last read in the bucket that ends at ``now`` (rounded down).

        ``containers``: (workspace name, deployment name, container id) of every container
        the scheduler holds now; one not seen at the last read counts as a cold start.
        """
        start = math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS - BUCKET_SECONDS
        requests: dict[Key, float] = {}
        errors: dict[Key, float] = {}
        for labels, value in self._counter_samples():
            workspace, deployment, status = labels
            if deployment == "-":
                continue  # never reached a deployment (an unknown name): nobody's chart
            totals = self._totals.setdefault((workspace, deployment + "\0" + status), _Totals())
            delta, totals.requests = value - totals.requests, value
            if delta <= 0:
                continue
            key = (workspace, _deployment_name(deployment))
            requests[key] = requests.get(key, 0.0) + delta
            if status.isdigit() and int(status) >= ERROR_STATUS:
                errors[key] = errors.get(key, 0.0) + delta
        spread: dict[Key, list[float]] = {}
        bounds: list[float] = []
        for (workspace, deployment), les, cumulative in self._histogram_samples():
            bounds = les
            totals = self._totals.setdefault((workspace, deployment), _Totals())
            previous = totals.buckets or [0.0] * len(cumulative)
            totals.buckets = cumulative
            grown = [now_c - then_c for now_c, then_c in zip(cumulative, previous, strict=True)]
            per_bucket = [grown[0]] + [grown[n] - grown[n - 1] for n in range(1, len(grown))]
            if sum(per_bucket) <= 0:
                continue
            key = (workspace, _deployment_name(deployment))
            merged = spread.setdefault(key, [0.0] * len(per_bucket))
            for n, count in enumerate(per_bucket):
                merged[n] += count
        cold = self._new_containers(containers)
        for key in set(requests) | set(cold) | set(spread):
            counts = spread.get(key)
            p50 = quantile(0.5, bounds, counts) if counts else 0.0
            p99 = quantile(0.99, bounds, counts) if counts else 0.0
            self.rings.setdefault(key, Ring()).add(
                start, int(requests.get(key, 0)), int(errors.get(key, 0)), cold.get(key, 0), p50, p99
            )
        # A deployment silent for a whole ring has nothing left to show.
        for key in [k for k, ring in self.rings.items() if ring.last_written < start - BUCKETS * BUCKET_SECONDS]:
            del self.rings[key]

    def _counter_samples(self) -> Iterable[tuple[tuple[str, str, str], float]]:
        for family in self._invocations.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    yield (s.labels["workspace"], s.labels["deployment"], s.labels["status"]), s.value

    def _histogram_samples(self) -> Iterable[tuple[tuple[str, str], list[float], list[float]]]:
        """Per (workspace, deployment label): the bucket bounds and cumulative counts, ``le`` ascending."""
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for family in self._latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket") and s.labels["deployment"] != "-":
                    key = (s.labels["workspace"], s.labels["deployment"])
                    bisect.insort(series.setdefault(key, []), (float(s.labels["le"]), s.value))
        for key, points in series.items():
            yield key, [le for le, _ in points], [count for _, count in points]

    def _new_containers(self, containers: Iterable[tuple[str, str, str]]) -> dict[Key, int]:
        """Containers that appeared since the last read, per deployment: the cold starts."""
        found: dict[Key, int] = {}
        current: set[str] = set()
        for workspace, name, container_id in containers:
            current.add(container_id)
            if container_id not in self._seen_containers:
                found[(workspace, name)] = found.get((workspace, name), 0) + 1
        self._seen_containers = current
        return found

    async def run(self, containers: Callable[[], Awaitable[list[tuple[str, str, str]]]]) -> None:
        """Read at every bucket's end until cancelled; a failed read is logged and the next one tries again."""
        while True:
            await asyncio.sleep(BUCKET_SECONDS - time.time() % BUCKET_SECONDS + 0.05)
            try:
                self.sample(time.time(), await containers())
            except Exception:
                log.exception("reading the metrics history failed")
