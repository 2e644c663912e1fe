"""Containers for deployments: start, route, scale, stop.

The scheduler keeps the live picture in memory (which containers exist, where
they listen, how busy they are) so the request path never waits on the
database; rows are written behind it, in order, for ``cove ps`` and audits.
It never talks to a runtime: it hands orders to workers, which pull them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from .._wire.apps import app_names_env
from .._wire.config import DeploymentConfig
from .._wire.kinds import TASK_KINDS
from .._wire.parameters import ParameterError, dumps, pool_key, resolve
from .._wire.peers import ColdReply, ColdStart, DemandReply, DemandReport, StartRefusal
from .._wire.worker import ContainerEvent, ContainerSpec, Order, WeightsReport
from ..exceptions import ConfigError
from ..store import (
    DEFAULT_EVENTS_RETENTION_SECONDS,
    Container,
    Deployment,
    EventWriter,
    Store,
    all_quotas,
    new_id,
    quota_limits,
)
from ._autoscaler import ContainerLoad, DesiredHistory, ScaleDecision, decide
from ._dispatch import CallFn, Dispatcher, TaskItem
from ._events import START_TIMEOUT_REASON, EventLog
from ._placement import GpuRoom, GpuShare, NoRoom, Placement, Request, WorkerRoom, choose, never_fits
from ._quotas import Quota, Usage, check_start, default_quota, gpus_of
from ._remote_load import RemoteLoad
from ._ticker import CronTicker

log = logging.getLogger("cove.scheduler")

START_TIMEOUT_SECONDS = 120.0
WORKER_LAPSE_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 30.0
# An idle container gives its room to waiting work once it has had nothing to do for this long
# (not at once: a stream of requests with short gaps keeps its container).
GIVE_WAY_IDLE_SECONDS = 2.0
# The most often requests that found a free slot run the autoscaler (one pass for all that came meanwhile).
WARM_SCALE_INTERVAL = 0.02


class StartFailed(RuntimeError):
    """No container could be started for the deployment; the message says why."""


class NoCapacity(StartFailed):
    """No live worker could ever hold one container of the deployment; the message names the unmet need."""


class DeploymentStopped(RuntimeError):
    """The deployment was stopped while the request waited."""


@dataclasses.dataclass(frozen=True)
class Fit:
    """Whether the registered workers could ever hold one container of a deployment.

    ``misfit``: why none of the live workers could, even with nothing else on it (a deploy is
    refused). ``warning``: it may be placed later, but nothing can run it now (no live worker
    is registered yet, or only cordoned or draining workers could hold it).
    """

    misfit: str | None = None
    warning: str | None = None


_COMMIT_REF = re.compile(r"@[0-9a-f]{40}$")  # a cache entry named by its commit, not shown by name


def request_for(config: DeploymentConfig) -> Request:
    """What one container of a deployment asks placement for."""
    return Request(
        config.cpu_millis,
        config.memory_mib,
        config.pool,
        config.gpu,
        config.gpu_count,
        config.gpu_memory_mib,
        config.gpu_compute,
        config.models,
    )


@dataclasses.dataclass(eq=False)
class Slot:
    """One container as the scheduler tracks it."""

    id: str
    pool: Pool
    worker_id: str
    state: str = "pending"
    address: str | None = None
    in_flight: int = 0
    # Requests other gateways run here now: on the leader, what followers report; on a follower, what the
    # leader's reply says runs here elsewhere. Both count against ``concurrent_requests``.
    remote_in_flight: int = 0
    served: int = 0
    stop_reason: str | None = None
    # Draining: this container serves until ``replacement`` (on another worker) is ready, then stops.
    retiring: bool = False
    replacement: str | None = None
    gpus: tuple[GpuShare, ...] = ()  # the GPUs (or the share of one) placement gave it
    created_at: float = dataclasses.field(default_factory=time.time)
    idle_since: float = dataclasses.field(default_factory=time.time)
    exited: asyncio.Future[str] = dataclasses.field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def live(self) -> bool:
        """The socket exists and the container has not been told to stop."""
        return self.state in ("listening", "ready")

    async def exit_reason(self, timeout: float = 3.0) -> str | None:
        """After a broken connection: wait briefly for the worker to say why the container ended."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except TimeoutError:
            return None

    @property
    def accepting(self) -> bool:
        """Listening sockets take requests even while the runner boots: they queue in the backlog."""
        return self.live and self.in_flight + self.remote_in_flight < self.pool.config.concurrent_requests


@dataclasses.dataclass(eq=False)
class Pool:
    """The containers and waiting requests of one deployment version (and one set of its class's parameters).

    A class with constructor parameters has a pool per distinct set of values, each
    scaled on its own work, so ``Model(size="large")`` never lands in a container
    whose ``@enter`` loaded ``size="small"``.
    """

    deployment: Deployment
    config: DeploymentConfig
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)  # checked, defaults filled in
    slots: dict[str, Slot] = dataclasses.field(default_factory=dict)
    waiters: collections.deque[asyncio.Future[None]] = dataclasses.field(default_factory=collections.deque)
    in_flight: int = 0
    remote_in_flight: int = 0  # requests other gateways hold for it (waiting or running), as they report them
    failures: int = 0
    last_failure: str | None = None
    retry_after: float = 0.0
    pending_reason: str | None = None
    quota_blocked: str | None = None
    scale_soon: bool = False  # a scaling pass is already queued for this loop turn
    warm_scaled_at: float = 0.0  # the event loop's time of the last pass a warm request asked for
    waiting_since: float | None = None  # when ``pending_reason`` was first set (for the event log)
    last_scale: tuple[int, int] | None = None  # (desired, live) of the last scale event recorded
    history: DesiredHistory = dataclasses.field(default_factory=DesiredHistory)  # for scale_down_window

    @property
    def key(self) -> str:
        """Its key in ``Scheduler.pools`` (and the dispatcher's queues)."""
        return pool_key(self.deployment.id, self.parameters)

    def live(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.state in ("pending", "listening", "ready")]

    async def wait_for_wake(self) -> None:
        """Wait until ``wake`` picks this caller (a slot freed, a container became ready, the pool stopped)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    def wake(self, count: int | None = None) -> None:
        woken = 0
        while self.waiters and (count is None or woken < count):
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                woken += 1


@dataclasses.dataclass(eq=False)
class WorkerHandle:
    """A connected worker and the orders waiting for it."""

    id: str
    name: str
    cpu_millis: int
    memory_mib: int
    runtime: str
    state: str = "ready"
    # An operator's choice, apart from liveness: "active", "cordoned" (no new containers) or
    # "draining" (no new containers, and the ones it has move elsewhere).
    admin_state: str = "active"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    # GPU inventory from registration (usage fields zero), and live figures from heartbeats.
    gpus: tuple[GpuRoom, ...] = ()
    gpu_usage: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # uuid → utilization, memory
    gpu_container_memory: dict[str, int] = dataclasses.field(default_factory=dict)  # container → MiB used
    # Its weight cache, from heartbeats: the models it holds (placement prefers it for them) and fetches.
    weights: WeightsReport = dataclasses.field(default_factory=WeightsReport)
    last_heartbeat: float = dataclasses.field(default_factory=time.time)
    orders: list[Order] = dataclasses.field(default_factory=list)
    has_orders: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def send(self, order: Order) -> None:
        self.orders.append(order)
        self.has_orders.set()


@dataclasses.dataclass(frozen=True)
class Lease:
    """A request's claim on one container slot; give it back with ``release``."""

    slot: Slot

    @property
    def address(self) -> str:
        assert self.slot.address is not None
        return self.slot.address

    @property
    def container_id(self) -> str:
        return self.slot.id


def pick_slot(pool: Pool) -> Slot | None:
    """The container a request of ``pool`` goes to now, or None when none has room."""
    best: Slot | None = None
    for slot in pool.slots.values():
        # Ready first, then not retiring (a draining worker's container serves until its replacement is
        # ready), then the least busy (counting what other gateways run there).
        if slot.accepting and (
            best is None
            or (slot.state == "ready", not slot.retiring, -slot.in_flight - slot.remote_in_flight)
            > (best.state == "ready", not best.retiring, -best.in_flight - best.remote_in_flight)
        ):
            best = slot
    return best


def stored_config(deployment: Deployment) -> DeploymentConfig:
    """A deployment's config as stored, its kind's defaults filling what it lacks.

    One stored before today's bounds may no longer pass them.
    """
    try:
        return DeploymentConfig.from_dict({"kind": deployment.kind, **deployment.config})
    except ConfigError as exc:
        raise StartFailed(
            f"deployment {deployment.name!r} v{deployment.version} cannot run: {exc}; deploy it again within the limits"
        ) from None


class Scheduler:
    """Places containers on workers and routes requests to them."""

    def __init__(
        self,
        store: Store,
        call: CallFn,
        on_container_gone: Callable[[str], None] | None = None,
        owner: str = "local",
        events_retention: float = DEFAULT_EVENTS_RETENTION_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner
        self.events = EventLog(EventWriter(store, events_retention))
        self.dispatcher = Dispatcher(store, call, owner=owner)
        self.dispatcher.on_work = self._work_arrived
        self.dispatcher.on_attempt_failed = self._attempt_failed
        self.ticker = CronTicker(store, self.dispatcher)
        self._loops: set[asyncio.Task[None]] = set()
        self.pools: dict[str, Pool] = {}
        self.workers: dict[str, WorkerHandle] = {}
        self._slots: dict[str, Slot] = {}
        self._on_container_gone = on_container_gone
        self._writes: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.quotas: dict[str, Quota] = {}  # workspaces with a quota of their own
        self.default_quota = default_quota()
        # Each worker pool's pods as the Kubernetes pool controller last saw them (cove.k8s sets it on the leader).
        self.pool_states: Callable[[], dict[str, dict[str, int]]] = dict
        # Whether a worker that can hold ``request`` is coming without anyone's action (a Kubernetes worker pool
        # below maxWorkers): then calls wait for it and deploys are accepted, instead of 503 and 422.
        self.capacity_coming: Callable[[Request], bool] = lambda request: False
        # Cordon and drain outlive a worker's restart: it registers again under the same name.
        self._admin_states: dict[str, str] = {}
        self.remote = RemoteLoad()  # what the gateways that do not lead hold
        # Deployments whose calls are refused before they queue (no worker can hold one): id -> the reason.
        self._refused: dict[str, str] = {}

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        self.events.writer.start()
        await self.load_quotas()
        await self.dispatcher.start()
        recovered = await self.dispatcher.recover()
        if recovered:
            log.info("re-queued %d unfinished tasks", recovered)
        self.events.cluster(
            "lease",
            f"gateway {self.owner} holds the scheduler lease and runs the scheduler"
            + (f"; it re-queued {recovered} unfinished task(s)" if recovered else ""),
            gateway=self.owner,
            recovered_tasks=recovered,
        )
        for deployment in await self.store.newest_active():
            try:
                self.keep_warm(deployment)
            except StartFailed as exc:
                log.warning("%s", exc)
        self._tasks = [
            asyncio.create_task(self._write_behind(), name="cove-store-writer"),
            asyncio.create_task(self._tick_forever(), name="cove-autoscaler"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for loop in list(self._loops):
            loop.cancel()
        await self._drain_writes()
        await self.dispatcher.close()
        await self.events.writer.close()

    async def _drain_writes(self) -> None:
        while not self._writes.empty():
            await self._writes.get_nowait()()

    async def _write_behind(self) -> None:
        while True:
            write = await self._writes.get()
            try:
                await write()
            except Exception:
                log.exception("store write failed")

    def _persist(self, container_id: str, **fields: Any) -> None:
        self._writes.put_nowait(lambda: self.store.update_container(container_id, **fields))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.tick()
                self.dispatcher.tick()
                await self.ticker.tick()
            except Exception:
                log.exception("autoscaler tick failed")

    # -- workers ------------------------------------------------------------------

    def release_long_polls(self) -> None:
        """The gateway is stopping: answer every worker's waiting order poll now (with whatever is queued).

        Otherwise the HTTP server, which waits for open requests before it stops,
        would sit out each poll's full wait.
        """
        for worker in self.workers.values():
            worker.has_orders.set()

    def add_worker(self, worker: WorkerHandle) -> None:
        worker.admin_state = self._admin_states.get(worker.name, worker.admin_state)
        self.workers[worker.id] = worker
        self.events.cluster(
            "worker",
            f"worker {worker.name} joined with {worker.cpu_millis}m cpu, {worker.memory_mib} MiB memory"
            + (f" and {len(worker.gpus)} GPU(s)" if worker.gpus else "")
            + (f"; it stays {worker.admin_state}" if worker.admin_state != "active" else ""),
            worker=worker.name,
            worker_id=worker.id,
            cpu_millis=worker.cpu_millis,
            memory_mib=worker.memory_mib,
            gpus=len(worker.gpus),
            labels=dict(worker.labels),
        )
        for pool in list(self.pools.values()):
            self._scale(pool)

    def supersede_workers(self, name: str) -> None:
        """A worker re-registered under ``name``: its earlier incarnations are lost."""
        for worker in list(self.workers.values()):
            if worker.name == name and worker.state == "ready":
                self._lose_worker(worker, time.time(), reason="it registered again (restarted)")

    def supersede_worker(self, worker_id: str) -> None:
        """The worker behind ``worker_id`` registered again (restarted): this earlier life of it is lost."""
        worker = self.workers.get(worker_id)
        if worker is not None and worker.state == "ready":
            self._lose_worker(worker, time.time(), reason="it registered again (restarted)")

    def heartbeat(
        self,
        worker_id: str,
        running: list[str],
        gpu: dict[str, Any] | None = None,
        weights: WeightsReport | None = None,
    ) -> list[str] | None:
        """Record a heartbeat; return containers the worker should stop (None: unknown worker)."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state == "lost":
            return None
        worker.last_heartbeat = time.time()
        if weights is not None:
            worker.weights = weights
        if gpu:
            worker.gpu_usage = {str(u["uuid"]): dict(u) for u in gpu.get("gpus", []) if "uuid" in u}
            worker.gpu_container_memory = dict(gpu.get("gpu_containers", {}))
        return [cid for cid in running if cid not in self._slots]

    def _room(self, excluding: Collection[str] = ()) -> list[WorkerRoom]:
        """Each usable worker's free room; the containers in ``excluding`` count as gone."""
        used: dict[str, tuple[int, int]] = {}
        for slot in self._slots.values():
            if slot.state == "exited" or slot.id in excluding:
                continue
            cpu, mem = used.get(slot.worker_id, (0, 0))
            used[slot.worker_id] = (cpu + slot.pool.config.cpu_millis, mem + slot.pool.config.memory_mib)
        return [
            WorkerRoom(
                w.id,
                w.cpu_millis - used.get(w.id, (0, 0))[0],
                w.memory_mib - used.get(w.id, (0, 0))[1],
                w.labels.get("pool"),
                self._gpu_room(w, excluding),
                frozenset(w.weights.held),
            )
            for w in self.workers.values()
            if w.state == "ready" and w.admin_state == "active"
        ]

    def _capacity(self, *, active_only: bool) -> list[WorkerRoom]:
        """Each live worker's whole room, as if nothing ran on it (``active_only``: not cordoned or draining)."""
        return [
            _whole_room(w)
            for w in self.workers.values()
            if w.state == "ready" and (w.admin_state == "active" or not active_only)
        ]

    def fit(self, config: DeploymentConfig) -> Fit:
        """Whether one container of ``config`` could ever be placed on the workers registered now (at deploy)."""
        live = self._capacity(active_only=False)
        if not live:
            return Fit(
                warning="no live worker is registered yet: nothing runs it until a worker that can hold it joins"
            )
        request = request_for(config)
        misfit = never_fits(live, request)
        if misfit is not None and self.capacity_coming(request):
            return Fit(warning=f"no worker can hold a container of it now ({misfit}): its worker pool adds one")
        if misfit is not None:
            return Fit(misfit=misfit)
        if never_fits(self._capacity(active_only=True), request) is None:
            return Fit()
        return Fit(warning=self._only_inactive_fit(request))

    def _only_inactive_fit(self, request: Request) -> str:
        names = sorted(
            w.name
            for w in self.workers.values()
            if w.state == "ready" and w.admin_state != "active" and never_fits([_whole_room(w)], request) is None
        )
        listed = ", ".join(names)
        return f"only cordoned or draining workers could hold it ({listed}): nothing runs it until one is uncordoned"

    def unplaceable(self, deployment: Deployment) -> str | None:
        """Why a call of ``deployment`` cannot be placed while the workers stay as they are; None: it may be.

        Only asked while the deployment has no live container. None too when no worker is
        registered at all: one may join (endpoints answer that case themselves, at once).
        """
        if any(pool.live() for pool in self._pools_of(deployment.id)):
            return None
        if not any(w.state == "ready" for w in self.workers.values()):
            return None
        config = stored_config(deployment)
        if self.capacity_coming(request_for(config)):
            return None
        return self._misfit(deployment, config)

    def note_refusal(self, deployment: Deployment, reason: str | None) -> None:
        """Record that calls of ``deployment`` are refused before they queue (``unplaceable``), or no longer are.

        A refused call makes no pool, so the backlog events of ``_waiting`` never see it: this records
        the same kind of row, once per change of the reason, so ``cove events`` says why calls fail.
        """
        if reason == self._refused.get(deployment.id) or not self.dispatcher.started:
            return
        if reason is None:
            before = self._refused.pop(deployment.id)
            self.events.of(
                deployment, "backlog", f"calls are accepted again (refused before because {before})", waiting=False
            )
            return
        self._refused[deployment.id] = reason
        self.events.of(
            deployment,
            "backlog",
            f"calls are refused before they queue: {reason}",
            waiting=True,
            refused=True,
            workers=sum(1 for w in self.workers.values() if w.state == "ready"),
        )

    def _pools_of(self, deployment_id: str) -> list[Pool]:
        """Every pool of one deployment version: one per set of constructor parameters in use."""
        return [pool for pool in self.pools.values() if pool.deployment.id == deployment_id]

    def _misfit(self, deployment: Deployment, config: DeploymentConfig) -> str | None:
        request = request_for(config)
        misfit = never_fits(self._capacity(active_only=True), request)
        if misfit is None:
            return None
        if never_fits(self._capacity(active_only=False), request) is None:
            misfit = self._only_inactive_fit(request)
        return f"no worker can hold a container of {deployment.name!r}: {misfit}"

    def _capacity_shrank(self) -> None:
        """A worker left or was cordoned: requests waiting for a first container look again at what can hold them."""
        for pool in self.pools.values():
            if pool.waiters and not pool.live():
                pool.wake()

    def gpu_holders(self, worker_id: str) -> list[tuple[Slot, GpuShare]]:
        """The live containers holding GPUs (or shares of them) on a worker."""
        return [
            (slot, share)
            for slot in self._slots.values()
            if slot.worker_id == worker_id and slot.state != "exited"
            for share in slot.gpus
        ]

    def _gpu_room(self, worker: WorkerHandle, excluding: Collection[str] = ()) -> tuple[GpuRoom, ...]:
        """The worker's GPUs with what its containers (but those in ``excluding``) hold of each."""
        if not worker.gpus:
            return ()
        whole: set[int] = set()
        memory: dict[int, int] = {}
        compute: dict[int, int] = {}
        for slot, share in self.gpu_holders(worker.id):
            if slot.id in excluding:
                continue
            if share.whole:
                whole.add(share.index)
            else:
                memory[share.index] = memory.get(share.index, 0) + share.memory_mib
                compute[share.index] = compute.get(share.index, 0) + share.compute
        return tuple(
            dataclasses.replace(
                g,
                held_whole=g.index in whole,
                used_memory_mib=memory.get(g.index, 0),
                used_compute=compute.get(g.index, 0),
            )
            for g in worker.gpus
        )

    def _retry_backlog(self) -> None:
        """Capacity was freed: try the pools that wait for room now rather than at the next tick."""
        for pool in list(self.pools.values()):
            if pool.pending_reason and not pool.quota_blocked:
                self._scale(pool)

    # -- requests -------------------------------------------------------------------

    def keep_warm(self, deployment: Deployment) -> None:
        """Start ``min_containers`` for a deployment's newest version now, not at its first request.

        Called at deploy and when the scheduler starts (after a restart or a lease
        takeover). Older versions of the same name lose their floor: only the
        version ``/endpoint/NAME`` reaches is kept warm; the others scale to zero.
        Sandboxes are skipped: their containers hold state that a new one cannot restore.
        """
        for pool in list(self.pools.values()):
            old = pool.deployment
            if (
                old.workspace_id == deployment.workspace_id
                and old.name == deployment.name
                and old.version < deployment.version
                and pool.config.autoscaler.min_containers
            ):
                pool.config = pool.config.replace(autoscaler=pool.config.autoscaler.replace(min_containers=0))
        config = stored_config(deployment)
        if deployment.kind != "sandbox" and config.autoscaler.min_containers > 0:
            try:  # a class's floor is for its default parameters; one with a required parameter has none
                defaults = resolve(config.class_parameters, {}, deployment.name)
            except ParameterError:
                return
            self._scale(self.pool_for(deployment, defaults))

    def serving_version(self, newest: Deployment, parameters: dict[str, Any] | None = None) -> Deployment:
        """The version that answers a call to its name now: the newest one, once it has a ready container.

        Until then, an older version of the same name with a ready container keeps
        answering while the newest starts its first one, so a deploy (or a
        rollback) moves traffic only to containers whose loading (``@enter``,
        ``on_start``) is done, and a new version that cannot start leaves the
        old one serving. With no older container ready, the newest answers. For a
        class, only containers made with the same ``parameters`` count.
        """
        values = parameters or {}
        pool = self.pools.get(pool_key(newest.id, values))
        if pool is not None and _has_ready(pool):
            return newest
        older = [
            p
            for p in self.pools.values()
            if p.deployment.workspace_id == newest.workspace_id
            and p.deployment.name == newest.name
            and p.deployment.version < newest.version
            and p.parameters == values
            and _has_ready(p)
        ]
        if not older:
            return newest
        warming = self.pool_for(newest, values)
        if not warming.live() and not warming.quota_blocked and time.time() >= warming.retry_after:
            self._start_container(warming)
        return max(older, key=lambda p: p.deployment.version).deployment

    def pool_for(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> Pool:
        """The pool of a deployment version for one set of its class's parameters (checked by the caller)."""
        values = parameters or {}
        pool = self.pools.get(pool_key(deployment.id, values))
        if pool is None:
            pool = Pool(deployment=deployment, config=stored_config(deployment), parameters=dict(values))
            self.pools[pool.key] = pool
        return pool

    async def acquire(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> Lease:
        """Wait for a container slot of the deployment (made with ``parameters``), starting containers as needed."""
        lease = self.try_acquire(deployment, parameters)
        if lease is not None:
            return lease
        pool = self.pool_for(deployment, parameters)
        pool.in_flight += 1
        try:
            self._scale(pool)
            while True:
                if self.pools.get(pool.key) is not pool:
                    raise DeploymentStopped(f"deployment {deployment.name!r} was stopped")
                slot = pick_slot(pool)
                if slot is not None:
                    slot.in_flight += 1
                    return Lease(slot)
                if not pool.live():
                    refusal = self.start_refusal(pool)
                    if refusal is not None:
                        raise refusal
                await pool.wait_for_wake()
        except BaseException:
            pool.in_flight -= 1
            raise

    def slot(self, container_id: str) -> Slot | None:
        """The slot of a live or stopping container, by its id."""
        return self._slots.get(container_id)

    def hold(self, container_id: str) -> Lease | None:
        """A slot of this container taken whatever room it has, for a call already running there (one the
        native front began and handed over: a stream); None when the container is gone."""
        slot = self._slots.get(container_id)
        return None if slot is None else _take(slot)

    def try_acquire(
        self, deployment: Deployment, parameters: dict[str, Any] | None = None, *, ready_only: bool = False
    ) -> Lease | None:
        """A free slot of a ready pool's container at once (``acquire``'s warm path), or None: nothing changed.

        ``ready_only``: only a container whose runner said it is ready (one that makes ``serving_version``
        answer ``deployment``), not one still loading with requests queued in its socket's backlog.
        """
        pool = self.pools.get(pool_key(deployment.id, parameters) if parameters else deployment.id)
        if pool is None:
            return None
        slot = pick_slot(pool)
        if slot is None or (ready_only and slot.state != "ready"):
            return None
        # Warm: the autoscaler looks soon, once for every request that came meanwhile.
        self._scale_warm(pool)
        return _take(slot)

    def start_refusal(self, pool: Pool) -> StartFailed | None:
        """Why a pool with no live container gets none now (its callers fail with 503 at once), or None: wait."""
        if pool.quota_blocked:
            return StartFailed(pool.quota_blocked)
        coming = self.capacity_coming(request_for(pool.config))
        if not coming and not any(w.state == "ready" for w in self.workers.values()):
            return StartFailed("no worker is available to run containers")
        misfit = self._misfit(pool.deployment, pool.config) if pool.pending_reason and not coming else None
        if misfit is not None:
            return NoCapacity(misfit)
        if pool.last_failure and time.time() < pool.retry_after:
            return StartFailed(pool.last_failure)
        return None

    def cold_start(self, ask: ColdStart, deployment: Deployment) -> ColdReply:
        """Another gateway has requests for ``deployment`` and no ready container: count them and start containers.

        The same as ``acquire`` does for requests of the leader's own: the demand
        scales the pool at once, and a pool that can get no container says why.
        With ``serve_older``, an older version with a ready container is named
        instead (the newest starts meanwhile), as ``serving_version`` does here.
        """
        if ask.serve_older:
            serving = self.serving_version(deployment)
            if serving.id != deployment.id:
                return ColdReply(serving_id=serving.id)
        pool = self.pool_for(deployment)
        self.remote.add(ask.gateway_id, deployment.id, ask.waiting)
        self._apply_remote(time.time())
        self._scale(pool)
        refusal = None if pool.live() else self.start_refusal(pool)
        return ColdReply(serving_id=deployment.id, refusal=None if refusal is None else _refusal(refusal))

    def release(self, lease: Lease, *, served: bool = True) -> None:
        slot = lease.slot
        slot.in_flight -= 1
        slot.idle_since = time.time()
        if served:
            slot.served += 1
        pool = slot.pool
        pool.in_flight -= 1
        pool.wake(1)

    async def _dispatch_loop(self, slot: Slot) -> None:
        """Feed one container connection with batches of the deployment's queued tasks."""
        pool = slot.pool
        queue = self.dispatcher.queue_for(pool.deployment, pool.parameters)

        def alive() -> bool:
            return slot.live

        def loops() -> int:
            return sum(1 for s in pool.slots.values() if s.live) * max(1, pool.config.concurrent_requests)

        try:
            while alive():
                batch = await self.dispatcher.take(queue, loops(), alive)
                if not batch:
                    return
                slot.in_flight += len(batch)
                try:
                    assert slot.address is not None
                    await self.dispatcher.run_batch(
                        queue, batch, slot.id, slot.address, slot.exit_reason, self.stop_container
                    )
                finally:
                    slot.in_flight -= len(batch)
                    slot.served += len(batch)
                    slot.idle_since = time.time()
        except Exception:
            log.exception("dispatch loop of container %s failed", slot.id)

    # -- scaling ------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.time()
        if self.remote.expire():
            self._apply_remote(now)
        for worker in list(self.workers.values()):
            if worker.state == "ready" and now - worker.last_heartbeat > WORKER_LAPSE_SECONDS:
                self._lose_worker(worker, now)
        self._drain_step()
        for pool in list(self.pools.values()):
            for slot in list(pool.slots.values()):
                if slot.state == "pending" and now - slot.created_at > START_TIMEOUT_SECONDS:
                    self._container_ended(slot, START_TIMEOUT_REASON, failed=True)
            self._scale(pool, now)
            if (
                not pool.slots
                and not pool.in_flight
                and not pool.remote_in_flight
                and not self.dispatcher.load(pool.key)
                and pool.config.autoscaler.min_containers == 0
            ):
                self.pools.pop(pool.key, None)

    def report_demand(self, report: DemandReport) -> DemandReply:
        """A gateway that does not lead says what it holds: count it, and tell it what runs elsewhere.

        A pool whose demand rose scales at once, as for a request of the leader's
        own; one whose containers got room back wakes its waiting requests.
        """
        self.remote.record(report)
        self._apply_remote(time.time())
        busy = self.remote.containers(but=report.gateway_id)
        for slot in self._slots.values():
            if slot.in_flight and slot.live:
                busy[slot.id] = busy.get(slot.id, 0) + slot.in_flight
        failing: dict[str, StartRefusal] = {}
        for deployment_id in report.deployments:
            pool = self.pools.get(pool_key(deployment_id, {}))
            refusal = None if pool is None or pool.live() else self.start_refusal(pool)
            if refusal is not None:
                failing[deployment_id] = _refusal(refusal)
        return DemandReply(busy={cid: count for cid, count in busy.items() if count}, failing=failing)

    def _apply_remote(self, now: float) -> None:
        """Put the reported figures on the pools and containers they name (unknown ones are left out)."""
        containers = self.remote.containers()
        deployments = self.remote.deployments()
        for slot in self._slots.values():
            count = containers.get(slot.id)
            if count is not None:
                slot.idle_since = now  # used since the last report: not idle, whatever it runs this instant
            count = count or 0
            if count < slot.remote_in_flight:
                slot.pool.wake(slot.remote_in_flight - count)
            slot.remote_in_flight = count
        for pool in list(self.pools.values()):
            count = deployments.get(pool.key, 0) if not pool.parameters else 0
            rose = count > pool.remote_in_flight
            pool.remote_in_flight = count
            if rose:
                self._scale(pool, now)

    def _work_arrived(self, deployment: Deployment, parameters: dict[str, Any]) -> None:
        """Inputs were queued: scale the pool once this loop turn is over, not once per put."""
        self._scale_later(self.pool_for(deployment, parameters))

    def _scale_later(self, pool: Pool) -> None:
        """Scale ``pool`` once this loop turn is over: one autoscaler decision for all the demand that came in it."""
        if not pool.scale_soon:
            pool.scale_soon = True
            asyncio.get_running_loop().call_soon(self._scale_soon, pool)

    def _scale_warm(self, pool: Pool) -> None:
        """Scale ``pool`` for a request that found a free slot: at most once per ``WARM_SCALE_INTERVAL``.

        At one request per loop turn (a caller at a time), a pass per turn was
        the autoscaler per request, about a tenth of the gateway's CPU. The
        demand is not lost, only looked at up to that much later: a pass is
        always queued, and a request that finds no free slot scales at once.
        """
        if pool.scale_soon:
            return
        pool.scale_soon = True
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = pool.warm_scaled_at + WARM_SCALE_INTERVAL
        if due <= now:
            pool.warm_scaled_at = now
            loop.call_soon(self._scale_soon, pool)
        else:
            pool.warm_scaled_at = due
            loop.call_at(due, self._scale_soon, pool)

    def _scale_soon(self, pool: Pool) -> None:
        pool.scale_soon = False
        if self.pools.get(pool.key) is pool:
            self._scale(pool)

    def _scale(self, pool: Pool, now: float | None = None) -> None:
        now = now or time.time()
        live = pool.live()
        decision = decide(
            pool.config.autoscaler,
            pool.in_flight + pool.remote_in_flight + self.dispatcher.load(pool.key),
            [ContainerLoad(s.id, s.in_flight + s.remote_in_flight, s.idle_since, s.state != "ready") for s in live],
            keep_warm_seconds=pool.config.keep_warm_seconds,
            now=now,
            history=pool.history,
        )
        if decision.start or decision.stop:
            log.info(
                "scaling %s: %s",
                pool.deployment.name,
                decision.reason,
                extra={"deployment": pool.deployment.name, "start": decision.start, "stop": len(decision.stop)},
            )
            self._record_scale(pool, decision)
        for container_id in decision.stop:
            self.stop_container(container_id, reason=decision.reason)
        if decision.start and now >= pool.retry_after:
            for _ in range(decision.start):
                if not self._start_container(pool):
                    break

    def _start_container(self, pool: Pool) -> Slot | None:
        config = pool.config
        pool.quota_blocked = self._quota_check(pool)
        if pool.quota_blocked:
            self._waiting(pool, pool.quota_blocked, quota=True)
            return None
        request = request_for(config)
        placed = choose(self._room(), request)
        if isinstance(placed, NoRoom):
            self._waiting(pool, placed.reason)
            self._make_room(pool, request)
            return None
        worker_id = placed.worker_id
        self._waiting(pool, None)
        dep = pool.deployment
        slot = Slot(id=new_id("ctr"), pool=pool, worker_id=worker_id, gpus=placed.gpus)
        pool.slots[slot.id] = slot
        self._slots[slot.id] = slot
        spec = ContainerSpec(
            container_id=slot.id,
            workspace_id=dep.workspace_id,
            deployment_id=dep.id,
            deployment_name=dep.name,
            version=dep.version,
            kind=dep.kind,
            module=dep.module,
            function=dep.function,
            code_hash=dep.code_hash,
            image_id=dep.image_id,
            cpu_millis=config.cpu_millis,
            memory_mib=config.memory_mib,
            concurrent_requests=config.concurrent_requests,
            env={**dict(config.env), **app_names_env(dep.app_names)},
            secrets=list(config.secrets),
            volumes=[list(pair) for pair in config.volumes],
            network=list(config.network),
            gpus=[share.to_dict() for share in placed.gpus],
            class_parameters=dict(pool.parameters),
            models=list(config.models),
        )
        row = Container(
            id=slot.id,
            workspace_id=dep.workspace_id,
            deployment_id=dep.id,
            worker_id=worker_id,
            state="pending",
            timings={},
            created_at=slot.created_at,
        )
        self._writes.put_nowait(lambda: self.store.add_container(row))
        self.workers[worker_id].send(Order("start", slot.id, spec))
        self.events.of(
            dep,
            "placed",
            f"container {slot.id} placed on worker {self._worker_name(worker_id)}: {placed.reason}",
            container=slot.id,
            worker=self._worker_name(worker_id),
            cpu_millis=config.cpu_millis,
            memory_mib=config.memory_mib,
            gpus=[share.to_dict() for share in placed.gpus],
            parameters=dict(pool.parameters),
        )
        log.info("starting container %s for %s/v%d on %s", slot.id, dep.name, dep.version, worker_id)
        return slot

    def _worker_name(self, worker_id: str) -> str:
        worker = self.workers.get(worker_id)
        return worker.name if worker is not None else worker_id

    def _waiting(self, pool: Pool, reason: str | None, *, quota: bool = False) -> None:
        """Set why the pool's work waits (None: it no longer does), recording each change in the event log."""
        if reason == pool.pending_reason:
            return
        now = time.time()
        if reason is None:
            waited = now - (pool.waiting_since or now)
            self.events.of(
                pool.deployment,
                "backlog",
                f"no longer waiting after {waited:.1f} s (it waited because {pool.pending_reason})",
                waited_seconds=round(waited, 3),
                waiting=False,
            )
            pool.waiting_since = None
        else:
            pool.waiting_since = pool.waiting_since or now
            self.events.of(
                pool.deployment,
                "backlog",
                f"work waits for a container: {reason}",
                waiting=True,
                quota=quota,
                in_flight=pool.in_flight + self.dispatcher.load(pool.key),
                live=len(pool.live()),
                workers=sum(1 for w in self.workers.values() if w.state == "ready"),
            )
        pool.pending_reason = reason

    def _record_scale(self, pool: Pool, decision: ScaleDecision) -> None:
        """Record a scaling decision once per change of its numbers (not at every tick that repeats it)."""
        key = (decision.desired, decision.live)
        if key == pool.last_scale and not decision.stop:
            return
        pool.last_scale = key
        self.events.of(
            pool.deployment,
            "scale",
            f"{'start ' + str(decision.start) if decision.start else 'stop ' + str(len(decision.stop))} "
            f"container(s): {decision.reason}",
            start=decision.start,
            stop=list(decision.stop),
            **decision.inputs(),
        )

    def _attempt_failed(self, item: TaskItem, error: dict[str, Any], retry: bool, delay: float) -> None:
        """A task's attempt failed: record whether it is retried, when, and why not otherwise."""
        attempt = max(item.attempt, 1)
        what = f"{error.get('type') or 'error'}: {str(error.get('message') or '')[:200]}"
        reason = (
            f"task {item.id} attempt {attempt} failed ({what}); retried in {delay:.1f} s"
            if retry
            else f"task {item.id} failed for good after {len(item.attempts)} attempt(s) ({what})"
        )
        self.events.of(
            item.deployment,
            "retry",
            reason,
            task=item.id,
            attempt=attempt,
            retry=retry,
            delay_seconds=round(delay, 3),
            error_type=error.get("type"),
            container=item.container_id,
        )

    def _make_room(self, waiting: Pool, request: Request) -> None:
        """Stop idle containers that no deployment needs now when their room lets ``waiting`` start.

        ``keep_warm_seconds`` keeps an idle container for requests that may come;
        it must not make work that is already here wait that long. Only containers
        above their deployment's floor and its current work give way, and only on
        one worker: the fewest that make room there, longest idle first.
        """
        stopping = {s.id for s in self._slots.values() if s.state == "stopping"}
        if isinstance(choose(self._room(stopping), request), Placement):
            return  # room is already on its way
        by_worker: dict[str, list[Slot]] = {}
        for slot in self._idle_surplus(waiting):
            by_worker.setdefault(slot.worker_id, []).append(slot)
        for slots in by_worker.values():
            freed = set(stopping)
            for count, slot in enumerate(slots, 1):
                freed.add(slot.id)
                if isinstance(choose(self._room(freed), request), Placement):
                    for idle in slots[:count]:
                        reason = f"idle; gave its room to {waiting.deployment.name!r}, which was waiting for room"
                        self.stop_container(idle.id, reason=reason)
                    return

    def _idle_surplus(self, waiting: Pool) -> list[Slot]:
        """Ready, idle containers beyond what their deployment wants now (floor and work), longest idle first."""
        now = time.time()
        surplus: list[Slot] = []
        for pool in self.pools.values():
            if pool is waiting:
                continue
            wanted = pool.config.autoscaler.desired(
                pool.in_flight + pool.remote_in_flight + self.dispatcher.load(pool.key)
            )
            spare = len(pool.live()) - wanted
            idle = sorted(
                (
                    s
                    for s in pool.slots.values()
                    if s.state == "ready"
                    and s.in_flight + s.remote_in_flight == 0
                    and not s.retiring
                    and now - s.idle_since >= GIVE_WAY_IDLE_SECONDS
                ),
                key=lambda s: s.idle_since,
            )
            surplus.extend(idle[: max(0, spare)])
        return sorted(surplus, key=lambda s: s.idle_since)

    def stop_container(self, container_id: str, reason: str = "stopped") -> bool:
        slot = self._slots.get(container_id)
        if slot is None or slot.state in ("stopping", "exited"):
            return False
        slot.state = "stopping"
        slot.stop_reason = reason
        self._persist(container_id, state="stopping", reason=reason)
        worker = self.workers.get(slot.worker_id)
        if worker is not None and worker.state == "ready":
            worker.send(Order("stop", container_id))
        else:
            self._container_ended(slot, reason, failed=False)
        return True

    def stop_deployment(self, deployment_ids: list[str], reason: str = "deployment stopped") -> None:
        for dep_id in deployment_ids:
            for worker in self.workers.values():
                if worker.state == "ready":  # containers a worker made ahead for it go too
                    worker.send(Order("drain", "", deployment_id=dep_id))
            for pool in self._pools_of(dep_id):
                self.pools.pop(pool.key, None)
                for slot in list(pool.slots.values()):
                    self.stop_container(slot.id, reason)
                pool.wake()

    # -- worker events ------------------------------------------------------------------

    def on_event(self, worker_id: str, event: ContainerEvent) -> None:
        slot = self._slots.get(event.container_id)
        if slot is None or slot.worker_id != worker_id:
            return
        if event.event == "listening" and slot.state == "pending":
            slot.state = "listening"
            slot.address = event.address
            self._persist(slot.id, state="listening", address=event.address)
            self.events.of(
                slot.pool.deployment,
                "started",
                f"container {slot.id} runs on worker {self._worker_name(slot.worker_id)}; its socket listens",
                container=slot.id,
                worker=self._worker_name(slot.worker_id),
                seconds=round(time.time() - slot.created_at, 3),
            )
            slot.pool.wake()
            if slot.pool.config.kind in TASK_KINDS:
                for _ in range(slot.pool.config.concurrent_requests):
                    loop = asyncio.create_task(self._dispatch_loop(slot), name=f"cove-dispatch-{slot.id}")
                    self._loops.add(loop)
                    loop.add_done_callback(self._loops.discard)
        elif event.event == "ready" and slot.state in ("pending", "listening"):
            slot.state = "ready"
            slot.pool.failures = 0
            slot.pool.last_failure = None
            self._persist(slot.id, state="ready", ready_at=time.time(), timings=dict(event.timings))
            self.events.of(
                slot.pool.deployment,
                "ready",
                f"container {slot.id} is ready: it loaded the code in {time.time() - slot.created_at:.1f} s",
                container=slot.id,
                worker=self._worker_name(slot.worker_id),
                timings=dict(event.timings),
            )
            slot.pool.wake()
        elif event.event == "exited":
            requested = slot.state == "stopping"
            never_ready = slot.state in ("pending", "listening")
            if requested:
                reason = slot.stop_reason or "stopped"
            else:
                reason = event.reason or f"container exited with code {event.exit_code}"
            self._container_ended(slot, reason, failed=never_ready and not requested, exit_code=event.exit_code)

    def _container_ended(self, slot: Slot, reason: str, *, failed: bool, exit_code: int | None = None) -> None:
        pool = slot.pool
        slot.state = "exited"
        if not slot.exited.done():
            slot.exited.set_result(reason)
        pool.slots.pop(slot.id, None)
        self._slots.pop(slot.id, None)
        if failed:
            pool.failures += 1
            pool.last_failure = f"container failed to start: {reason}"
            pool.retry_after = time.time() + min(MAX_BACKOFF_SECONDS, 2 ** (pool.failures - 1))
            log.warning("container %s of %s failed to start: %s", slot.id, pool.deployment.name, reason)
        self._persist(
            slot.id, state="failed" if failed else "exited", reason=reason, exit_code=exit_code, stopped_at=time.time()
        )
        self.events.exited(pool.deployment, slot.id, reason, failed=failed, exit_code=exit_code)
        if slot.address and self._on_container_gone:
            self._on_container_gone(slot.address)
        pool.wake()
        if any(p.pending_reason for p in self.pools.values()):
            asyncio.get_running_loop().call_soon(self._retry_backlog)  # its room may fit a waiting pool

    def _lose_worker(self, worker: WorkerHandle, now: float, reason: str | None = None) -> None:
        why = reason or f"no heartbeat for {now - worker.last_heartbeat:.0f} s"
        log.warning("worker %s lost: %s", worker.id, why)
        self.events.cluster("worker", f"worker {worker.name} was lost: {why}", worker=worker.name, worker_id=worker.id)
        worker.state = "lost"
        self._writes.put_nowait(lambda: self.store.set_worker_state(worker.id, "lost"))
        for slot in [s for s in self._slots.values() if s.worker_id == worker.id]:
            self._container_ended(slot, f"worker {worker.name} was lost", failed=False)
        self._capacity_shrank()

    # -- quotas and worker operations ----------------------------------------------------

    def _quota_check(self, pool: Pool) -> str | None:
        """Why the pool's workspace may not start one more container now (None: it may).

        A draining worker's retiring containers are not counted: their replacements
        take their place, so a drain never stalls on a workspace at its limit.
        """
        workspace_id = pool.deployment.workspace_id
        quota = self.quota_of(workspace_id)
        if quota.unlimited:
            return None
        usage = Usage()
        for slot in self._slots.values():
            if slot.pool.deployment.workspace_id != workspace_id or slot.retiring:
                continue
            if slot.state in ("pending", "listening", "ready"):
                usage = usage.plus(1, slot.pool.config.cpu_millis, gpus_of(slot.pool.config))
        return check_start(quota, usage, pool.config)

    async def load_quotas(self) -> None:
        """Read every workspace's quota from the store (at start; changes arrive through ``set_quota``)."""
        self.quotas = {row.workspace_id: Quota.from_dict(quota_limits(row)) for row in await all_quotas(self.store)}

    def quota_of(self, workspace_id: str) -> Quota:
        """The limits a workspace runs under: its own quota, else the default one."""
        return self.quotas.get(workspace_id, self.default_quota)

    def set_quota(self, workspace_id: str, quota: Quota | None) -> None:
        """Install a workspace's quota (None: back to the default) and retry pools it held back."""
        if quota is None:
            self.quotas.pop(workspace_id, None)
        else:
            self.quotas[workspace_id] = quota
        for pool in list(self.pools.values()):
            if pool.deployment.workspace_id == workspace_id:
                pool.quota_blocked = None
                self._scale(pool)

    def set_admin_state(self, worker_id: str, state: str) -> WorkerHandle:
        """Cordon, drain or reactivate a worker; raises KeyError for an unknown or lost one."""
        if state not in ("active", "cordoned", "draining"):
            raise ValueError(f"worker state must be active, cordoned or draining, not {state!r}")
        worker = self.workers.get(worker_id)
        if worker is None or worker.state == "lost":
            raise KeyError(worker_id)
        if worker.admin_state != state:
            self.events.cluster(
                "drain", f"worker {worker.name} is {state} now (was {worker.admin_state})", worker=worker.name
            )
        worker.admin_state = state
        self._admin_states[worker.name] = state
        if state == "active":
            for slot in self._slots.values():
                if slot.worker_id == worker_id:
                    slot.retiring = False
            for pool in list(self.pools.values()):
                self._scale(pool)
        else:
            if state == "draining":
                self._drain_step()
            self._capacity_shrank()
        return worker

    def _drain_step(self) -> None:
        """Move containers off draining workers: start a replacement elsewhere, stop the old one once idle."""
        for worker in list(self.workers.values()):
            if worker.admin_state != "draining" or worker.state != "ready":
                continue
            for slot in [s for s in self._slots.values() if s.worker_id == worker.id]:
                if slot.state in ("stopping", "exited"):
                    continue
                pool = slot.pool
                slot.retiring = True
                if self.pools.get(pool.key) is not pool or slot.state == "pending":
                    self.stop_container(slot.id, reason=f"worker {worker.name} is draining")
                    continue
                replacement = self._slots.get(slot.replacement) if slot.replacement else None
                if replacement is None or replacement.state in ("stopping", "exited"):
                    started = self._start_container(pool)
                    slot.replacement = started.id if started is not None else None
                    if started is not None:
                        self.events.of(
                            pool.deployment,
                            "drain",
                            f"container {slot.id} moves off draining worker {worker.name}: "
                            f"{started.id} replaces it, and it stops once that one is ready",
                            container=slot.id,
                            replacement=started.id,
                            worker=worker.name,
                        )
                elif replacement.state == "ready" and slot.in_flight == 0:
                    self.stop_container(slot.id, reason=f"moved off worker {worker.name} (drained)")

    def worker_views(self) -> list[dict[str, Any]]:
        """Every known worker: capacity, free resources, states, labels, containers, last heartbeat."""
        used: dict[str, list[int]] = {}
        for slot in self._slots.values():
            if slot.state == "exited":
                continue
            entry = used.setdefault(slot.worker_id, [0, 0, 0])
            entry[0] += 1
            entry[1] += slot.pool.config.cpu_millis
            entry[2] += slot.pool.config.memory_mib
        out = []
        for w in self.workers.values():
            count, cpu, memory = used.get(w.id, [0, 0, 0])
            out.append(
                {
                    "id": w.id,
                    "name": w.name,
                    "state": w.state if w.state == "lost" else w.admin_state,
                    "alive": w.state == "ready",
                    "runtime": w.runtime,
                    "labels": dict(w.labels),
                    "cpu_millis": w.cpu_millis,
                    "memory_mib": w.memory_mib,
                    "free_cpu_millis": w.cpu_millis - cpu,
                    "free_memory_mib": w.memory_mib - memory,
                    "containers": count,
                    "last_heartbeat": w.last_heartbeat,
                    "models": sorted(m for m in w.weights.held if not _COMMIT_REF.search(m)),
                }
            )
        return out

    # -- views ----------------------------------------------------------------------------

    def deployment_of(self, container_id: str) -> Deployment | None:
        """The deployment a live container serves, or None once it has ended."""
        slot = self._slots.get(container_id)
        return slot.pool.deployment if slot is not None else None

    def worker_of(self, container_id: str) -> str | None:
        """The worker a live container was placed on, or None once it has ended."""
        slot = self._slots.get(container_id)
        return slot.worker_id if slot is not None else None

    def container_view(self, container_id: str) -> dict[str, Any] | None:
        slot = self._slots.get(container_id)
        if slot is None:
            return None
        view: dict[str, Any] = {"in_flight": slot.in_flight, "served": slot.served, "idle_since": slot.idle_since}
        fetching = self.weights_progress(slot)
        if fetching:
            view["reason"] = fetching
        if slot.pool.parameters:
            view["parameters"] = dict(slot.pool.parameters)
        return view

    def parameter_sets(self, deployment_id: str) -> list[dict[str, Any]]:
        """The sets of class parameters a deployment version has pools for now (none for a function)."""
        return sorted((dict(p.parameters) for p in self._pools_of(deployment_id) if p.parameters), key=dumps)

    def prefetch(self, model: str, pool: str | None, models_url: str) -> list[str]:
        """Order every live, active worker (of ``pool``) to fetch ``model`` into its weight cache; their names."""
        names = []
        for worker in self.workers.values():
            if worker.state != "ready" or worker.admin_state != "active":
                continue
            if pool is not None and worker.labels.get("pool") != pool:
                continue
            worker.send(Order("prefetch", "", model=model, models_url=models_url))
            names.append(worker.name)
        return sorted(names)

    def weights_progress(self, slot: Slot) -> str | None:
        """``fetching weights org/name@rev: 12.0 of 200.0 MiB`` while the container waits for its weights."""
        worker = self.workers.get(slot.worker_id)
        if worker is None or slot.state not in ("pending", "listening"):
            return None
        return worker.weights.progress_text(slot.id)

    def pending_reason(self, deployment_id: str) -> str | None:
        """Why calls of a deployment version wait (in any of its pools), or None."""
        for pool in self._pools_of(deployment_id):
            reason = pool.pending_reason or (pool.last_failure if time.time() < pool.retry_after else None)
            if reason:
                return reason
        return None


def _refusal(exc: StartFailed) -> StartRefusal:
    return StartRefusal(type="NoCapacity" if isinstance(exc, NoCapacity) else "StartFailed", message=str(exc))


def _whole_room(worker: WorkerHandle) -> WorkerRoom:
    """All a worker offers, as placement sees a worker with nothing on it (its GPUs as registered: untouched)."""
    return WorkerRoom(worker.id, worker.cpu_millis, worker.memory_mib, worker.labels.get("pool"), worker.gpus)


def _has_ready(pool: Pool) -> bool:
    return any(slot.state == "ready" for slot in pool.slots.values())


def _take(slot: Slot) -> Lease:
    """A lease of ``slot``, counted at once on it and its pool."""
    slot.pool.in_flight += 1
    slot.in_flight += 1
    return Lease(slot)
