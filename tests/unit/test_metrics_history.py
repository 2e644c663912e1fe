"""The gateway's hour of metrics history: read from the Prometheus counters into fixed-size rings."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from cove.gateway._history import BUCKET_SECONDS, BUCKETS, MetricsHistory, quantile

BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0)
T0 = 1_700_000_000.0  # a bucket boundary (a multiple of 10 s)


def metrics() -> tuple[Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("inv", "x", ["workspace", "deployment", "status"], registry=registry)
    histogram = Histogram("lat", "x", ["workspace", "deployment"], buckets=BOUNDS, registry=registry)
    return counter, histogram


def call(counter: Counter, histogram: Histogram, deployment: str, status: int, seconds: float) -> None:
    counter.labels("ws", deployment, str(status)).inc()
    histogram.labels("ws", deployment).observe(seconds)


def test_quantile_interpolates_in_the_bucket_like_prometheus() -> None:
    bounds = [*BOUNDS, float("inf")]
    assert quantile(0.5, bounds, [0, 10, 0, 0, 0, 0]) == pytest.approx(0.0055)
    assert quantile(0.99, bounds, [0, 0, 0, 0, 0, 4]) == 10.0  # +Inf answers its lower bound
    assert quantile(0.5, bounds, [0] * 6) == 0.0


def test_each_read_lands_in_its_bucket_with_rate_latency_errors_and_cold_starts() -> None:
    counter, histogram = metrics()
    history = MetricsHistory(counter, histogram)
    history.sample(T0, [])  # the start: nothing yet
    for _ in range(20):
        call(counter, histogram, "greet/v1", 200, 0.005)
    call(counter, histogram, "greet/v2", 500, 5.0)
    call(counter, histogram, "greet/v2", 404, 0.005)  # the caller's mistake: not an error of the deployment
    call(counter, histogram, "-", 404, 0.001)  # no deployment found: nobody's chart
    history.sample(T0 + BUCKET_SECONDS + 0.05, [("ws", "greet", "ctr-1"), ("ws", "other", "ctr-2")])
    view = history.get("ws", "greet", now=T0 + BUCKET_SECONDS + 1)
    assert view is not None and len(view["requests_per_second"]) == BUCKETS
    assert view["start"] + (BUCKETS - 1) * BUCKET_SECONDS == T0  # the newest complete bucket is last
    assert view["requests_per_second"][-1] == 2.2  # 22 requests in 10 s, every version together
    assert view["errors"][-1] == 1 and view["cold_starts"][-1] == 1
    assert 1.0 < view["p50_ms"][-1] < 10.0 and view["p99_ms"][-1] > 1000
    assert view["p50_ms"][-2] is None and view["requests_per_second"][:-1] == [0.0] * (BUCKETS - 1)
    other = history.get("ws", "other", now=T0 + BUCKET_SECONDS + 1)
    assert other is not None and other["cold_starts"][-1] == 1 and other["requests_per_second"][-1] == 0
    # The next read counts only what came since, and the same container is no new cold start.
    call(counter, histogram, "greet/v1", 200, 0.5)
    history.sample(T0 + 2 * BUCKET_SECONDS + 0.05, [("ws", "greet", "ctr-1")])
    view = history.get("ws", "greet", now=T0 + 2 * BUCKET_SECONDS + 1)
    assert view is not None
    assert view["requests_per_second"][-2:] == [2.2, 0.1] and view["cold_starts"][-1] == 0
    assert 100 < view["p50_ms"][-1] < 1000
    assert history.get("ws", "nobody") is None and history.get("other-ws", "greet") is None


def test_an_hour_later_the_ring_reuses_its_slots_and_idle_deployments_are_forgotten() -> None:
    counter, histogram = metrics()
    history = MetricsHistory(counter, histogram)
    history.sample(T0, [])
    call(counter, histogram, "greet/v1", 200, 0.005)
    call(counter, histogram, "quiet/v1", 200, 0.005)
    history.sample(T0 + BUCKET_SECONDS, [])
    later = T0 + BUCKETS * BUCKET_SECONDS  # the same slot, an hour on
    call(counter, histogram, "greet/v1", 200, 0.005)
    history.sample(later + BUCKET_SECONDS, [])
    view = history.get("ws", "greet", now=later + BUCKET_SECONDS + 1)
    assert view is not None and sum(view["requests_per_second"]) == pytest.approx(0.1)  # the old count is gone
    history.sample(later + BUCKETS * BUCKET_SECONDS, [])
    assert history.get("ws", "quiet") is None  # silent for a whole ring: its memory is freed
    assert len(history.rings) == 1
