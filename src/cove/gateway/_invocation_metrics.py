"""``cove_invocations_total`` and ``cove_invocation_seconds``, counted without a lock per request.

prometheus-client's ``Counter`` and ``Histogram`` take a lock for every
increment (three per relayed request: the count, a bucket and the sum) and
check on each that the series may be observed: together a few percent of the
gateway's CPU per request. Every invocation is counted on the event loop's
thread, so these two keep plain numbers per series and build the metric
families only when ``/metrics`` (or the dashboard's history) collects them.
The exposition is the same; only the ``_created`` samples are left out.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class LoopCounter(Collector):
    """A counter whose series are only ever incremented on one thread (the event loop's)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._counts: dict[tuple[str, ...], int] = {}

    def inc(self, labels: tuple[str, ...]) -> None:
        self._counts[labels] = self._counts.get(labels, 0) + 1

    def add(self, labels: tuple[str, ...], count: int) -> None:
        """Count ``count`` at once: what the native front counted since it was last asked."""
        self._counts[labels] = self._counts.get(labels, 0) + count

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, value in dict(self._counts).items():  # a copy: a collect may run on another thread
            family.add_metric(labels, value)
        yield family


class LoopHistogram(Collector):
    """A histogram whose series are only ever observed on one thread (the event loop's)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(sorted(buckets))
        self._le = [str(float(bound)) for bound in self._bounds] + ["+Inf"]  # as prometheus-client writes ``le``
        # Per series: the count in each bucket (not cumulative; the last is +Inf's), then the sum.
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0] * (len(self._bounds) + 2)
        series[bisect.bisect_left(self._bounds, value)] += 1  # the first bound >= value: le is inclusive
        series[-1] += value

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds

    def add_counts(self, labels: tuple[str, ...], buckets: Sequence[int], count: int, total: float) -> None:
        """Observations counted elsewhere (the native front): per bucket (not cumulative), their count and sum."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0] * (len(self._bounds) + 2)
        counted = 0
        for index, n in enumerate(buckets[: len(self._bounds)]):
            series[index] += n
            counted += n
        series[len(self._bounds)] += count - counted  # above the last bound: +Inf's
        series[-1] += total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, series in dict(self._series).items():
            counts = list(series)
            cumulative = list(itertools.accumulate(counts[:-1]))
            family.add_metric(labels, list(zip(self._le, cumulative, strict=True)), counts[-1])
        yield family
