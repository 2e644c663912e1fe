"""The gateway's long-lived parts, built once at start-up and shared by routes."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..cluster import FORWARDED, Cluster
from ..images import ImageBuilder
from ..scheduler import Scheduler
from ..store import Deployment, Store, get_split
from ._auth import Authenticator
from ._change_feed import ChangeFeed
from ._content import Content
from ._deadlines import Deadlines
from ._follower_slots import FollowerSlots
from ._front_tables import FrontTables
from ._invocation_metrics import LoopCounter, LoopHistogram
from ._local_reservoir import LocalReservoir
from ._logs import LogHub
from ._secretbox import SecretBox
from ._settings import GatewaySettings
from ._upstream import UpstreamPool
from ._user_metrics import UserMetrics


class Metrics:
    """Prometheus metrics, in a registry of this gateway's own.

    Series about a tenant's deployments carry a ``workspace`` label: a
    member's scrape of ``/metrics`` shows only its own workspace's series.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.invocations = LoopCounter(
            "cove_invocations_total", "Endpoint invocations", ["workspace", "deployment", "status"]
        )
        self.latency = LoopHistogram(
            "cove_invocation_seconds",
            "Invocation latency through the gateway",
            ["workspace", "deployment"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        # Of those, the ones the express lane served (warm: no task, no store read; see ``_express``).
        self.express = LoopCounter(
            "cove_express_invocations_total",
            "Endpoint invocations served in callbacks by the express lane (a warm container, cached token)",
            ["workspace"],
        )
        self.registry.register(self.invocations)
        self.registry.register(self.latency)
        self.registry.register(self.express)
        # Of those, the ones the native front served (``cove server --native-front``), counted as it reports them.
        self.native_front = LoopCounter(
            "cove_native_front_invocations_total",
            "Endpoint invocations served by the native front (cove-front) without reaching this gateway",
            ["workspace"],
        )
        self.registry.register(self.native_front)
        self.native_front_limit = Gauge(
            "cove_native_front_concurrency_limit",
            "Calls the native front sends a container at once: what it learned the container runs without a "
            "queue in it, within the room the gateway leaves",
            ["workspace", "deployment", "container"],
            registry=self.registry,
        )
        self.container_starts = Counter(
            "cove_container_starts_total", "Containers started", ["deployment"], registry=self.registry
        )
        self.cold_start = Histogram(
            "cove_container_ready_seconds",
            "Time from container order to runner ready",
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.containers = Gauge("cove_containers", "Live containers", registry=self.registry)
        # On the leader: requests that followers forwarded to it (a follower serves warm invocations itself).
        self.forwarded = Counter(
            "cove_forwarded_requests_total",
            "Requests other gateways forwarded to this one"
            " (route: endpoint, call (functions, tasks, maps), output, asgi, sandbox, worker or other)",
            ["route"],
            registry=self.registry,
        )
        # The handlers' own metrics, as their containers post them (labelled with deployment and container).
        self.user = UserMetrics()
        self.registry.register(self.user)

    def invocation(self, labels: tuple[str, str], status: int, seconds: float) -> None:
        """Count one invocation of ``labels`` (workspace, deployment) and observe its latency (on the loop)."""
        self.invocations.inc((*labels, str(status)))
        self.latency.observe(labels, seconds)


def _drawn(split: dict[int, int]) -> int:
    """A version drawn by the traffic shares of a split (version: percent)."""
    return random.choices(list(split), weights=list(split.values()))[0]


def _seen(done: asyncio.Future[Any]) -> None:
    """Retrieve a lookup's error, so one that nobody awaited (a refresh ahead of expiry) is not logged as lost."""
    if not done.cancelled():
        done.exception()


class DeploymentCache:
    """Deployment lookups for the hot path; invalidated on change, bounded by a TTL."""

    def __init__(self, store: Store, ttl: float = 5.0, refresh_ahead: float = 1.0) -> None:
        self._store = store
        self._ttl = ttl
        # Under traffic an entry is read again in the background during its last ``refresh_ahead`` seconds, so it
        # never expires under the requests: none of them waits for the store, and the loop never holds one store
        # read per request in flight (as every request arriving at an expired entry used to make).
        self._refresh_ahead = refresh_ahead
        self._splits: dict[tuple[str, str], tuple[dict[int, int] | None, float]] = {}
        self._loading_splits: dict[tuple[str, str], asyncio.Future[dict[int, int] | None]] = {}
        self._cache: dict[tuple[str, str, int | None], tuple[Deployment, float]] = {}
        self._loading: dict[tuple[str, str, int | None], asyncio.Future[Deployment]] = {}
        self._generation = 0
        self.on_invalidate: list[Callable[[], None]] = []  # told when every entry is dropped (the native front)

    async def get(self, workspace_id: str, name: str, version: int | None) -> Deployment:
        """The version asked for; left out, the one this call goes to: the newest, or one drawn by its traffic share."""
        if version is None:
            split = await self._split(workspace_id, name)
            if split:
                version = _drawn(split)
        key = (workspace_id, name, version)
        hit = self._fresh(key)
        if hit is not None:
            return hit
        # One lookup per key at a time: when the entry expires under load, the requests
        # arriving meanwhile wait for that lookup instead of each querying the store.
        loading = self._loading.get(key) or self._start_load(key)
        return await asyncio.shield(loading)

    def peek(self, workspace_id: str, name: str, version: int | None) -> Deployment | None:
        """What :meth:`get` answers when it needs no store read (the express lane's); else None."""
        if version is None:
            known, split = self._fresh_split((workspace_id, name))
            if not known:
                return None
            if split:
                version = _drawn(split)
        return self._fresh((workspace_id, name, version))

    def plain_until(self, workspace_id: str, name: str, version: int | None) -> float:
        """Until when :meth:`peek` answers this key with its cached row and no draw (0: it may not, now)."""
        if version is None:
            known = self._splits.get((workspace_id, name))
            if known is None or known[0]:
                return 0.0
        hit = self._cache.get((workspace_id, name, version))
        return hit[1] if hit is not None else 0.0

    def _fresh(self, key: tuple[str, str, int | None]) -> Deployment | None:
        """The cached row of ``key`` while it is fresh, read again ahead of its expiry; None when it is not."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is None or hit[1] <= now:
            return None
        if hit[1] - now < self._refresh_ahead and key not in self._loading:
            self._start_load(key)
        return hit[0]

    def _start_load(self, key: tuple[str, str, int | None]) -> asyncio.Future[Deployment]:
        loading = self._loading[key] = asyncio.ensure_future(self._load(key, self._generation))
        loading.add_done_callback(_seen)
        return loading

    async def _load(self, key: tuple[str, str, int | None], generation: int) -> Deployment:
        try:
            row = await self._store.get_deployment(*key)
            if generation == self._generation:  # not invalidated meanwhile
                self._cache[key] = (row, time.monotonic() + self._ttl)
            return row
        finally:
            if generation == self._generation:
                self._loading.pop(key, None)

    async def _split(self, workspace_id: str, name: str) -> dict[int, int] | None:
        key = (workspace_id, name)
        known, split = self._fresh_split(key)
        if known:
            return split
        loading = self._loading_splits.get(key) or self._start_split_load(key)  # one store read per key at a time
        return await asyncio.shield(loading)

    def _fresh_split(self, key: tuple[str, str]) -> tuple[bool, dict[int, int] | None]:
        """Whether the split of ``key`` is cached and fresh (read again ahead of its expiry), and the split."""
        now = time.monotonic()
        hit = self._splits.get(key)
        if hit is None or hit[1] <= now:
            return False, None
        if hit[1] - now < self._refresh_ahead and key not in self._loading_splits:
            self._start_split_load(key)
        return True, hit[0]

    def _start_split_load(self, key: tuple[str, str]) -> asyncio.Future[dict[int, int] | None]:
        loading = self._loading_splits[key] = asyncio.ensure_future(self._load_split(key, self._generation))
        loading.add_done_callback(_seen)
        return loading

    async def _load_split(self, key: tuple[str, str], generation: int) -> dict[int, int] | None:
        try:
            split = await get_split(self._store, *key)
            if generation == self._generation:  # not invalidated meanwhile
                self._splits[key] = (split, time.monotonic() + self._ttl)
            return split
        finally:
            if generation == self._generation:
                self._loading_splits.pop(key, None)

    def invalidate(self) -> None:
        for listener in self.on_invalidate:
            listener()
        self._splits.clear()
        self._loading_splits.clear()
        self._cache.clear()
        self._loading.clear()
        self._generation += 1


@dataclasses.dataclass
class Gateway:
    settings: GatewaySettings
    store: Store
    scheduler: Scheduler
    auth: Authenticator
    upstream: UpstreamPool
    logs: LogHub
    builder: ImageBuilder
    deployments: DeploymentCache
    metrics: Metrics
    secret_box: SecretBox
    cluster: Cluster
    content: Content
    follower: FollowerSlots  # the ready containers a gateway that does not lead relays invocations to
    changes: ChangeFeed  # the dashboard's open change streams, ended when the server stops
    reservoir: LocalReservoir  # this home's package reservoir, read to audit the images that run
    deadlines: Deadlines = dataclasses.field(default_factory=Deadlines)  # relayed requests' timeouts, timers shared
    front: FrontTables | None = None  # the native front's tables, when ``cove server --native-front`` runs one

    def count_if_forwarded(self, scope: dict[str, Any], route: str) -> None:
        """Count a request another gateway handed to this one (``cove_forwarded_requests_total``, ``route``)."""
        if self.cluster.shared and any(name == FORWARDED for name, _ in scope["headers"]):
            self.metrics.forwarded.labels(route).inc()
