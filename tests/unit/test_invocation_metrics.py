"""The invocation metrics' lock-free collectors expose what prometheus-client's own Counter and Histogram would.

The same observations go to both; the text format of ``/metrics`` must be
the same line for line (prometheus-client's ``_created`` samples aside, which
the lock-free ones leave out), bucket edges included: ``le`` is inclusive.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from cove.gateway._invocation_metrics import LoopCounter, LoopHistogram
from cove.gateway._state import Metrics

BUCKETS = (0.001, 0.01, 0.1, 1, 10)
OBSERVED = [
    (("default", "echo/v1"), 200, 0.0005),
    (("default", "echo/v1"), 200, 0.001),  # on an edge: in le="0.001"
    (("default", "echo/v1"), 504, 1.0),
    (("team", "echo/v2"), 200, 0.05),
    (("team", "echo/v2"), 422, 30.0),  # past the last bound: only +Inf
    (("-", "-"), 404, 0.0001),
]


def _exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line for line in lines if "_created" not in line)


def test_the_lock_free_series_expose_what_prometheus_client_would() -> None:
    theirs = CollectorRegistry()
    counter = Counter("cove_invocations_total", "Endpoint invocations", ["workspace", "deployment", "status"],
                      registry=theirs)  # fmt: skip
    histogram = Histogram("cove_invocation_seconds", "Latency", ["workspace", "deployment"], buckets=BUCKETS,
                          registry=theirs)  # fmt: skip
    ours = CollectorRegistry()
    loop_counter = LoopCounter("cove_invocations_total", "Endpoint invocations", ["workspace", "deployment", "status"])
    loop_histogram = LoopHistogram("cove_invocation_seconds", "Latency", ["workspace", "deployment"], BUCKETS)
    ours.register(loop_counter)
    ours.register(loop_histogram)
    for labels, status, seconds in OBSERVED:
        counter.labels(*labels, str(status)).inc()
        histogram.labels(*labels).observe(seconds)
        loop_counter.inc((*labels, str(status)))
        loop_histogram.observe(labels, seconds)
    assert _exposition(ours) == _exposition(theirs)
    assert 'cove_invocation_seconds_bucket{deployment="echo/v1",le="0.001",workspace="default"} 2.0' in _exposition(
        ours
    )


def test_the_gateways_metrics_count_an_invocation_in_both() -> None:
    metrics = Metrics()
    metrics.invocation(("default", "echo/v1"), 200, 0.003)
    metrics.invocation(("default", "echo/v1"), 200, 0.2)
    text = generate_latest(metrics.registry).decode()
    assert 'cove_invocations_total{deployment="echo/v1",status="200",workspace="default"} 2.0' in text
    assert 'cove_invocation_seconds_count{deployment="echo/v1",workspace="default"} 2.0' in text
    assert 'cove_invocation_seconds_bucket{deployment="echo/v1",le="0.005",workspace="default"} 1.0' in text


def test_counts_added_at_once_expose_what_one_at_a_time_would() -> None:
    """The native front reports counts per bucket (not cumulative, as front.c counts them); added at once they
    must read as the same observations made one at a time."""
    one_by_one = CollectorRegistry()
    counter = LoopCounter("cove_invocations_total", "Endpoint invocations", ["workspace", "deployment", "status"])
    histogram = LoopHistogram("cove_invocation_seconds", "Latency", ["workspace", "deployment"], BUCKETS)
    one_by_one.register(counter)
    one_by_one.register(histogram)
    at_once = CollectorRegistry()
    added = LoopCounter("cove_invocations_total", "Endpoint invocations", ["workspace", "deployment", "status"])
    added_histogram = LoopHistogram("cove_invocation_seconds", "Latency", ["workspace", "deployment"], BUCKETS)
    at_once.register(added)
    at_once.register(added_histogram)
    label = ("default", "echo/v1")
    seconds = [0.0005, 0.001, 0.05, 0.05, 30.0]  # the last past every bound: +Inf only
    for value in seconds:
        counter.inc((*label, "200"))
        histogram.observe(label, value)
    per_bucket = [
        sum(1 for v in seconds if lower < v <= bound) for lower, bound in zip((0, *BUCKETS), BUCKETS, strict=False)
    ]
    added.add((*label, "200"), len(seconds))
    added_histogram.add_counts(label, per_bucket, len(seconds), sum(seconds))
    assert _exposition(at_once) == _exposition(one_by_one)
    assert added_histogram.bounds == BUCKETS
