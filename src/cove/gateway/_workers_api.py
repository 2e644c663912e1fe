"""The HTTP protocol workers speak, from this host or another (see ``cove._wire.worker``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from .._wire import api as wire
from .._wire.fields import check_pool
from .._wire.models import ModelRef
from .._wire.worker import ContainerEvent, Order, WeightsReport
from ..exceptions import ConfigError
from ..scheduler import GpuRoom, Scheduler, WorkerHandle
from ..store import NotAllowed, Principal
from ._body import RequestBody
from ._container_tokens import revoke_soon, token_env
from ._deps import AdminDep, GatewayDep, WorkerDep
from ._errors import ApiError
from ._models import check_model_refs, models_url
from ._request_ids import log_fields
from ._secrets_api import resolve_secret_env
from ._state import Gateway

router = APIRouter(prefix="/api/v1")


class GpuReport(RequestBody):
    """One GPU of a registering worker (cove.gpu.GpuDevice)."""

    index: int = Field(ge=0, lt=1024)
    uuid: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    memory_mib: int = Field(gt=0, le=1 << 30)


class GpuUsageReport(RequestBody):
    uuid: str = Field(min_length=1, max_length=128)
    utilization: float | None = Field(default=None, ge=0, le=100)
    memory_used_mib: int | None = Field(default=None, ge=0, le=1 << 30)


class RegisterRequest(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    cpu_millis: int = Field(gt=0, le=100_000_000)
    memory_mib: int = Field(gt=0, le=1 << 40)
    labels: dict[str, str] = Field(default_factory=dict)
    runtime: str = Field(default="process", max_length=16)
    shares_home: str | None = None
    # Set by workers on other hosts: containers listen on TCP ports of this host instead of unix sockets.
    advertise_host: str | None = Field(default=None, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    gpus: list[GpuReport] = Field(default_factory=list, max_length=256)
    # The worker's persistent id, kept in its own folder of its home; ``name`` is only what people see.
    identity: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")


@dataclasses.dataclass(frozen=True)
class Registration:
    """One life of a worker: the identity it registered as, and the token it registered with."""

    identity: str
    token_id: str


# Per scheduler (one per gateway process), worker id → its registration. It lives exactly as long as the
# scheduler's own list of workers: a gateway that starts afresh knows no worker until each registers again.
_registrations: weakref.WeakKeyDictionary[Scheduler, dict[str, Registration]] = weakref.WeakKeyDictionary()


def _registered(gw: Gateway) -> dict[str, Registration]:
    return _registrations.setdefault(gw.scheduler, {})


def _identity_of(body: RegisterRequest) -> str:
    """The identity a worker registers as; one that sends none is known by its name."""
    return body.identity or "name-" + hashlib.sha256(body.name.encode()).hexdigest()[:32]


def _worker(gw: Gateway, worker_id: str) -> WorkerHandle:
    worker = gw.scheduler.workers.get(worker_id)
    if worker is None or worker.state == "lost":
        raise ApiError(404, f"worker {worker_id} is not registered; register again")
    return worker


def _own_worker(gw: Gateway, worker_id: str, who: Principal) -> WorkerHandle:
    """A live worker that ``who`` registered: only that token may take its orders or speak for it.

    This holds for admin tokens too: an admin token may run workers of its
    own, but never pulls another worker's orders (they carry decrypted secrets).
    """
    worker = _worker(gw, worker_id)
    registration = _registered(gw).get(worker_id)
    if registration is None or registration.token_id != who.token_id:
        raise ApiError(403, f"worker {worker_id} registered with another token; a token acts only for its own worker")
    return worker


async def _token_of_worker(gw: Gateway, worker_id: str) -> str | None:
    """The token a worker (live, lost or of an earlier gateway run) registered with."""
    registration = _registered(gw).get(worker_id)
    if registration is not None:
        return registration.token_id
    return await gw.store.worker_token_id(worker_id)


def _check_gpus(body: RegisterRequest) -> tuple[GpuRoom, ...]:
    if len({g.uuid for g in body.gpus}) != len(body.gpus) or len({g.index for g in body.gpus}) != len(body.gpus):
        raise ApiError(422, "each GPU must have its own index and uuid")
    return tuple(GpuRoom(g.index, g.uuid, g.name, g.memory_mib) for g in sorted(body.gpus, key=lambda g: g.index))


def _supersede(gw: Gateway, identity: str) -> None:
    """A worker registering as an identity already connected is that worker restarted.

    Its previous life and the containers it ran are gone, so do not wait for
    heartbeats to lapse. Other workers, even under the same name, are left alone.
    """
    for worker_id, registration in list(_registered(gw).items()):
        if registration.identity == identity:
            gw.scheduler.supersede_worker(worker_id)


@router.post("/workers/register", response_model=wire.WorkerRegistered)
async def register(body: RegisterRequest, gw: GatewayDep, who: WorkerDep) -> dict[str, Any]:
    gpus = _check_gpus(body)
    identity = _identity_of(body)
    try:
        await gw.store.bind_worker_token(who, identity)
    except NotAllowed as exc:
        raise ApiError(403, str(exc)) from None
    _supersede(gw, identity)
    row = await gw.store.register_worker(
        name=body.name,
        cpu_millis=body.cpu_millis,
        memory_mib=body.memory_mib,
        labels={**body.labels, **({"shares_home": body.shares_home} if body.shares_home else {})},
        runtime=body.runtime,
        who=who,
        identity=identity,
    )
    _registered(gw)[row.id] = Registration(identity, who.token_id)
    labels = {**body.labels, **({"advertise_host": body.advertise_host} if body.advertise_host else {})}
    gw.scheduler.add_worker(
        WorkerHandle(
            id=row.id,
            name=row.name,
            cpu_millis=row.cpu_millis,
            memory_mib=row.memory_mib,
            runtime=row.runtime,
            labels=labels,
            gpus=gpus,
        )
    )
    # A worker on this home reads built images and volumes in place; any other pulls images over HTTP.
    shares_home = body.shares_home is not None and body.shares_home == str(gw.settings.home.root)
    return {"worker_id": row.id, "heartbeat_seconds": 2.0, "shares_home": shares_home}


@router.get(
    "/workers",
    summary="Workers: capacity, free resources, state, runtime, labels, containers",
    response_model=list[wire.WorkerView],
)
async def list_workers(gw: GatewayDep, who: WorkerDep) -> list[dict[str, Any]]:
    return gw.scheduler.worker_views()


@router.get(
    "/worker-pools",
    summary="Worker pools on Kubernetes: pods pending, ready and draining (empty without the pool controller)",
    response_model=list[wire.WorkerPoolView],
)
async def list_worker_pools(gw: GatewayDep, who: WorkerDep) -> list[dict[str, Any]]:
    states = gw.scheduler.pool_states()
    return [{"pool": name, **state} for name, state in sorted(states.items())]


def _find(gw: Gateway, ref: str) -> WorkerHandle:
    """A live worker by id or by name (names are unique among live workers)."""
    workers = gw.scheduler.workers
    if ref in workers and workers[ref].state != "lost":
        return workers[ref]
    named = [w for w in workers.values() if w.name == ref and w.state != "lost"]
    if not named:
        known = ", ".join(sorted({w.name for w in workers.values() if w.state != "lost"})) or "none"
        raise ApiError(404, f"no live worker with id or name {ref!r} (live workers: {known})")
    return named[0]


async def _set_state(gw: Gateway, ref: str, state: str) -> dict[str, Any]:
    worker = gw.scheduler.set_admin_state(_find(gw, ref).id, state)
    return next(view for view in gw.scheduler.worker_views() if view["id"] == worker.id)


class PrefetchRequest(RequestBody):
    model: str = Field(
        min_length=3, max_length=256, description="ORG/NAME or ORG/NAME@REVISION of a model the reservoir holds."
    )
    pool: str | None = None


@router.post(
    "/workers/prefetch",
    summary="Warm workers' weight caches with a model of the reservoir ahead of a rollout",
    response_model=wire.ModelPrefetch,
)
async def prefetch(body: PrefetchRequest, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    try:
        model = str(ModelRef.parse(body.model))
        pool = check_pool(body.pool)
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    warnings = await check_model_refs(gw.settings, (model,))
    workers = gw.scheduler.prefetch(model, pool, models_url(gw.settings))
    if not workers:
        where = f" in pool {pool!r}" if pool else ""
        raise ApiError(409, f"no live, active worker{where} to prefetch {model} on")
    return {"model": model, "pool": pool, "workers": workers, "warnings": warnings}


@router.post("/workers/{ref}/cordon", summary="Place no new containers on a worker", response_model=wire.WorkerView)
async def cordon(ref: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    return await _set_state(gw, ref, "cordoned")


@router.post(
    "/workers/{ref}/uncordon",
    summary="Let a cordoned or draining worker take containers again",
    response_model=wire.WorkerView,
)
async def uncordon(ref: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    return await _set_state(gw, ref, "active")


@router.post(
    "/workers/{ref}/drain",
    summary="Cordon a worker and move its containers elsewhere: replacements start first, old ones stop once idle",
    response_model=wire.WorkerView,
)
async def drain(ref: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    return await _set_state(gw, ref, "draining")


@router.get("/workers/{worker_id}/orders", response_model=wire.WorkerOrders)
async def orders(
    worker_id: str, gw: GatewayDep, who: WorkerDep, wait: Annotated[float, Query(ge=0, le=60)] = 20
) -> dict[str, Any]:
    worker = _own_worker(gw, worker_id, who)
    if not worker.orders:
        worker.has_orders.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.has_orders.wait(), wait)
    taken, worker.orders = worker.orders, []
    worker.has_orders.clear()
    return {"orders": [o.to_dict() for o in await _with_secrets(gw, worker_id, taken)]}


async def _with_secrets(gw: Gateway, worker_id: str, orders: list[Order]) -> list[Order]:
    """Decrypt the secrets a start order names, now, on the way to the worker; a vanished one fails the start."""
    out = []
    for order in orders:
        spec = order.spec
        if order.action == "start" and spec is not None and spec.secrets:
            try:
                env = await resolve_secret_env(gw, spec.workspace_id, spec.secrets)
            except LookupError as exc:
                gw.scheduler.on_event(worker_id, ContainerEvent(order.container_id, "exited", reason=str(exc)))
                continue
            order = dataclasses.replace(order, spec=dataclasses.replace(spec, secret_env=env))
        if order.action == "start" and order.spec is not None:
            env = {**order.spec.secret_env, **await token_env(gw, order.spec)}
            order = dataclasses.replace(order, spec=dataclasses.replace(order.spec, secret_env=env))
        if order.action == "start" and order.spec is not None and order.spec.models:
            url = models_url(gw.settings)  # where the worker fetches the weights its cache lacks
            order = dataclasses.replace(order, spec=dataclasses.replace(order.spec, models_url=url))
        out.append(order)
    return out


async def _placed_on(gw: Gateway, container_id: str, worker_id: str) -> bool:
    """Whether the container was placed on this worker (a live one by the scheduler, an ended one by its row)."""
    placed = gw.scheduler.worker_of(container_id)
    if placed is None:
        row = await gw.store.get_container(container_id)
        placed = row.worker_id if row is not None else None
    return placed == worker_id


class EventsRequest(RequestBody):
    events: list[dict[str, Any]]


@router.post("/workers/{worker_id}/events", status_code=204)
async def events(worker_id: str, body: EventsRequest, gw: GatewayDep, who: WorkerDep) -> Response:
    _own_worker(gw, worker_id, who)
    for raw in body.events:
        try:
            event = ContainerEvent.from_dict(raw)
        except (TypeError, KeyError) as exc:
            raise ApiError(422, f"malformed container event: {exc}") from None
        if event.event not in ("listening", "ready", "exited"):
            raise ApiError(422, f"unknown container event {event.event!r}")
        # Only the worker that ran a container ends its token (the scheduler ignores others' events already).
        ended_here = event.event == "exited" and await _placed_on(gw, event.container_id, worker_id)
        gw.scheduler.on_event(worker_id, event)
        if ended_here:
            revoke_soon(gw, event.container_id)
        if event.event == "ready" and event.timings:
            total = event.timings.get("ready_ms")
            if isinstance(total, int | float):
                gw.metrics.cold_start.observe(total / 1000)
    gw.metrics.containers.set(sum(len(p.slots) for p in gw.scheduler.pools.values()))
    return Response(status_code=204)


class HeartbeatRequest(RequestBody):
    containers: list[str] = Field(default_factory=list)
    # Live GPU figures (NVML; absent on workers without GPUs): per GPU, and GPU memory per container.
    gpus: list[GpuUsageReport] = Field(default_factory=list, max_length=256)
    gpu_containers: dict[str, int] = Field(default_factory=dict)
    # The worker's weight cache (``cove._wire.worker.WeightsReport``); absent: it holds none.
    weights: dict[str, Any] | None = None


@router.post("/workers/{worker_id}/heartbeat", response_model=wire.HeartbeatReply)
async def heartbeat(worker_id: str, body: HeartbeatRequest, gw: GatewayDep, who: WorkerDep) -> dict[str, Any]:
    _own_worker(gw, worker_id, who)
    gpu = {"gpus": [u.model_dump() for u in body.gpus], "gpu_containers": body.gpu_containers} if body.gpus else None
    try:
        weights = WeightsReport.from_dict(body.weights)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, f"malformed weights report: {exc}") from None
    stop = gw.scheduler.heartbeat(worker_id, body.containers, gpu, weights)
    if stop is None:
        raise ApiError(404, f"worker {worker_id} is not registered; register again")
    return {"stop": stop}


class LogsRequest(RequestBody):
    lines: list[dict[str, Any]]


@router.post("/containers/{container_id}/logs", status_code=204)
async def push_logs(container_id: str, body: LogsRequest, gw: GatewayDep, who: WorkerDep) -> Response:
    deployment = gw.scheduler.deployment_of(container_id)
    worker_id = gw.scheduler.worker_of(container_id)
    if deployment is not None:
        key = f"{deployment.workspace_id}/{deployment.name}"
    else:
        row = await gw.store.get_container(container_id)
        if row is None:
            raise ApiError(404, f"container {container_id} is not known")
        worker_id = row.worker_id
        deployment = await gw.store.get_deployment_by_id(row.deployment_id)
        key = f"{row.workspace_id}/{deployment.name if deployment else ''}"
    if worker_id is None or await _token_of_worker(gw, worker_id) != who.token_id:
        raise ApiError(403, f"container {container_id} does not run on a worker this token registered")
    lines = [
        {"ts": float(line.get("ts", 0)), "stream": str(line.get("stream", "stdout")), "text": str(line.get("text", ""))}
        for line in body.lines
    ]
    fields = log_fields(deployment)
    for line, sent in zip(lines, body.lines, strict=True):
        line.update(fields)
        if sent.get("request_id"):  # printed during a request: its id, for cove logs and searches
            line["request_id"] = str(sent["request_id"])[:128]
    await asyncio.to_thread(gw.logs.append, container_id, key, lines)
    return Response(status_code=204)
