"""The pool controller's view of each worker pool as Prometheus gauges, read at scrape time.

Read from the scheduler's ``pool_states`` (which the controller fills on the leading gateway), so the series
exist only where the controller runs and never go stale between passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Gauge name suffix -> the key of a pool's state and what the gauge says.
GAUGES: tuple[tuple[str, str, str], ...] = (
    ("desired", "desired", "Worker pods the pool controller aims for after its last pass"),
    ("pending", "pending", "Worker pods created and not yet registered as workers"),
    ("ready", "ready", "Worker pods whose worker is registered and not draining"),
    ("draining", "draining", "Worker pods being drained before deletion"),
    ("min", "min", "The pool's minWorkers"),
    ("max", "max", "The pool's maxWorkers"),
)


class PoolCollector(Collector):
    """``cove_worker_pool_<state>{pool=...}`` from the controller's last pass (no samples without one)."""

    def __init__(self, pool_states: Callable[[], dict[str, dict[str, int]]]) -> None:
        self.pool_states = pool_states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = self.pool_states()
        for suffix, key, doc in GAUGES:
            family = GaugeMetricFamily(f"cove_worker_pool_{suffix}", doc, labels=["pool"])
            for pool, state in sorted(states.items()):
                family.add_metric([pool], state.get(key, 0))
            yield family
