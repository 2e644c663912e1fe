"""The node agent: register, pull orders, run containers, heartbeat, ship logs and events.

Every loop survives the gateway going away: it logs, backs off and retries,
because a worker outliving a gateway restart is the normal case. Starts and
stops each run in their own task, so a slow start never holds up the next
poll or another container.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

from .._wire.models import ModelRef
from .._wire.worker import ContainerEvent, ContainerSpec, Order, WeightsReport
from ..gpu import GpuManager, detect_inventory, mps_root
from ..runtime import LaunchSpec, Runtime, select_runtime
from ._client import GatewayClient, WorkerUnknown
from ._containers import Container
from ._images import ImageCache
from ._listen import tcp_listener, unix_listener
from ._logs import LogShipper
from ._paths import WorkerDirs, check_hash, check_id
from ._pool import ContainerPool, Pooled, PoolSettings
from ._relay import Relay, RelaySettings, relay_socket_path
from ._settings import WorkerSettings
from ._weights import WeightCache

log = logging.getLogger("cove.worker")

FETCH_HEARTBEAT_SECONDS = 0.5  # the heartbeat's period while a container waits for model weights


class WorkerRefused(RuntimeError):
    """The gateway answered 401 or 403 to registration: the token is wrong, revoked or not a worker's."""


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:200]


class Backoff:
    """Exponential delays between retries, reset by a success."""

    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def reset(self) -> None:
        self.delay = self.first


class Worker:
    """State and loops of one worker process."""

    def __init__(self, settings: WorkerSettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.dirs = WorkerDirs(settings.home.worker_dir(check_id(settings.name, "worker name")))
        # Who this worker is to gateways, kept in its folder: the name is only shown, and two workers
        # named alike (two homes on one host) must not take each other's place.
        self.identity = settings.home.worker_identity(settings.name)
        # Bundles and engine state live in the worker's own folder, so a restarted worker finds
        # (and deletes) exactly the containers it left behind, and no other worker's.
        self.runtime = runtime or select_runtime(settings.runtime, root=self.dirs.root / "oci")
        self.client = GatewayClient(settings.gateway_url, settings.token)
        self.shipper = LogShipper(self.client)
        self.worker_id: str | None = None
        self.heartbeat_seconds = settings.heartbeat_seconds
        self.containers: dict[str, Container] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self._register_lock = asyncio.Lock()
        self._heartbeat_now = asyncio.Event()
        self._code: dict[str, asyncio.Task[Path]] = {}
        self.relay: Relay | None = None  # the containers' way to the gateway when it runs on another machine
        self.gpus = GpuManager(detect_inventory(owner=settings.name), mps_root(settings.name, self.dirs.root))
        self.images = ImageCache(
            self.client,
            settings.home,
            isolated=self.runtime.isolated,
            runtime_name=self.runtime.name,
            python_env_roots=settings.python_env_roots,
        )
        self.listen = tcp_listener(settings.advertise_host) if settings.advertise_host else unix_listener
        # Model weights fetched from the reservoir once per worker, shared read-only by its containers.
        self.weights = WeightCache(self.dirs.root / "weights", settings.models_url or "", settings.weight_cache_bytes)
        # Containers made ahead for recently started specs (engines that can create without running).
        self.pool: ContainerPool | None = None
        # (Not on a remote worker yet: pooled containers listen on unix sockets, which gateways cannot reach.)
        if callable(getattr(self.runtime, "create", None)) and not settings.advertise_host:
            self.pool = ContainerPool(
                self.runtime,  # type: ignore[arg-type]
                self.dirs,
                self._build_launch,
                PoolSettings.from_env(),
                listen=self.listen,
            )

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        self.dirs.create()
        self.dirs.reap_stale()
        reap = getattr(self.runtime, "reap_stale", None)
        if reap is not None:
            await asyncio.to_thread(reap)
        if self.pool is not None:
            self.pool.reap_leftovers()
        await self._register()
        await self._start_relay()
        loops = [self._poll_orders(), self._heartbeat(), self._send_events(), self.shipper.run()]
        if self.pool is not None:
            loops.append(self.pool.run_expiry())
        await asyncio.gather(*(self._guard(loop) for loop in loops))

    async def shutdown(self) -> None:
        """Stop every container and report it; used when the worker itself stops."""
        ids = list(self.containers)
        if ids:
            log.info("stopping all containers", extra={"count": len(ids)})
        # Parked containers are discarded while the live ones stop: the supervisor's grace is short.
        closing = [self.pool.close()] if self.pool is not None else []
        stopping = asyncio.gather(*closing, *(self._stop(cid) for cid in ids), return_exceptions=True)
        try:
            # Bounded: a runtime call that never returns must not keep the worker alive after its server is
            # gone; whatever is left is reaped from the engine's state when a worker starts on this home again.
            await asyncio.wait_for(stopping, timeout=self.settings.stop_grace_seconds + 10)
        except TimeoutError:
            log.warning("containers did not all stop in time; the next worker start on this home reaps them")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush_events(), timeout=3)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.shipper.flush(), timeout=2)
        if self.relay is not None:
            await self.relay.stop()  # after the containers: they may call the gateway until they exit
        await self.client.aclose()

    async def _start_relay(self) -> None:
        """Off the gateway's machine, serve the containers a relay to it; beside it, drop a stale one."""
        path = relay_socket_path(self.dirs.root)
        if self.images.shares_home:
            path.unlink(missing_ok=True)  # else containers would get a dead socket
            return
        self.relay = Relay(RelaySettings(self.settings.gateway_url), path)
        await self.relay.start()

    async def _guard(self, loop: Any) -> None:
        """A loop that dies unexpectedly takes the worker down loudly rather than silently half-working."""
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker loop crashed")
            raise

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- registration ----------------------------------------------------------------------

    async def _register(self) -> None:
        settings = self.settings
        body = {
            "name": settings.name,
            "identity": self.identity,
            "cpu_millis": settings.cpu_millis,
            "memory_mib": settings.memory_mib,
            "labels": dict(settings.labels),
            "runtime": self.runtime.name,
            "shares_home": str(settings.home.root),
            **({"gpus": self.gpus.report()} if self.gpus.report() else {}),
            **({"advertise_host": settings.advertise_host} if settings.advertise_host else {}),
        }
        backoff = Backoff()
        while True:
            try:
                reply = await self.client.register(body)
                self.worker_id = str(reply["worker_id"])
                self.heartbeat_seconds = float(reply.get("heartbeat_seconds", settings.heartbeat_seconds))
                self.images.shares_home = bool(reply.get("shares_home", True))
                log.info("registered with the gateway", extra={"worker_id": self.worker_id})
                return
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in (401, 403):
                    # Retrying cannot fix a bad token: stop, and say why.
                    raise WorkerRefused(
                        f"the gateway refused this worker ({exc.response.status_code}): {_message(exc.response)}"
                    ) from None
                log.warning("cannot register with the gateway; retrying", extra={"error": repr(exc)})
                await backoff.wait()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning("cannot register with the gateway; retrying", extra={"error": repr(exc)})
                await backoff.wait()

    async def _reregister(self, stale_id: str | None) -> None:
        async with self._register_lock:
            if self.worker_id != stale_id:
                return  # another loop already registered again
            log.warning("the gateway no longer knows this worker; registering again", extra={"worker_id": stale_id})
            await self._register()
        self._heartbeat_now.set()  # tell it at once which containers we run, so it can stop the unknown ones

    # --- loops -------------------------------------------------------------------------------

    async def _poll_orders(self) -> None:
        backoff = Backoff()
        while True:
            worker_id = self.worker_id
            assert worker_id is not None
            try:
                orders = await self.client.orders(worker_id, self.settings.poll_wait_seconds)
            except WorkerUnknown:
                await self._reregister(worker_id)
                continue
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot poll orders; retrying", extra={"error": repr(exc)})
                await backoff.wait()
                continue
            backoff.reset()
            for order in orders:
                self._apply(order)

    def _apply(self, order: Order) -> None:
        if order.action == "start" and order.spec is not None:
            # Delivery time of the order (clocks agree on one machine; from afar it is only indicative).
            delivered = round(max(0.0, time.time() - order.sent_at) * 1000, 3) if order.sent_at else None
            self._start(order.spec, delivered)
        elif order.action == "stop":
            self._spawn(self._stop(order.container_id))
        elif order.action == "drain" and order.deployment_id:
            if self.pool is not None:
                self.pool.drain(order.deployment_id)
        elif order.action == "prefetch" and order.model:
            self._spawn(self._prefetch(order.model, order.models_url))
        else:
            log.warning("ignoring a malformed order", extra={"order": order.to_dict()})

    async def _heartbeat(self) -> None:
        while True:
            worker_id = self.worker_id
            try:
                gpu = await asyncio.to_thread(self.gpus.heartbeat, list(self.containers))
                weights = await asyncio.to_thread(self.weights_report)
                stop = await self.client.heartbeat(str(worker_id), self.containers.keys(), gpu, weights)
            except WorkerUnknown:
                await self._reregister(worker_id)
                continue
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("heartbeat failed", extra={"error": repr(exc)})
                stop = []
            for container_id in stop:
                if container_id in self.containers:
                    self._spawn(self._stop(container_id))
            self._heartbeat_now.clear()
            # While a container waits for its weights, beat faster: the bytes fetched reach `cove ps` and 503s.
            fetching = any(c.fetching_models for c in self.containers.values())
            wait = min(self.heartbeat_seconds, FETCH_HEARTBEAT_SECONDS) if fetching else self.heartbeat_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heartbeat_now.wait(), timeout=wait)

    async def _emit(self, event: ContainerEvent) -> None:
        self._events.put_nowait(event)
        await asyncio.sleep(0)  # let the sender start the request now: no batching delay on the start path

    async def _send_events(self) -> None:
        backoff = Backoff()
        while True:
            batch = [await self._events.get()]
            while not self._events.empty():
                batch.append(self._events.get_nowait())
            while True:
                worker_id = self.worker_id
                try:
                    await self.client.events(str(worker_id), batch)
                    backoff.reset()
                    break
                except WorkerUnknown:
                    await self._reregister(worker_id)
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code < 500:
                        log.error("the gateway refused events; dropping them", extra={"error": exc.response.text})
                        break
                    await backoff.wait()
                except httpx.HTTPError as exc:
                    log.warning("cannot send events; retrying", extra={"error": repr(exc)})
                    await backoff.wait()

    async def _flush_events(self) -> None:
        while not self._events.empty():
            batch = []
            while not self._events.empty():
                batch.append(self._events.get_nowait())
            await self.client.events(str(self.worker_id), batch)

    # --- containers ----------------------------------------------------------------------------

    def _start(self, spec: ContainerSpec, order_ms: float | None = None) -> None:
        container_id = spec.container_id
        if container_id in self.containers:
            return  # a repeated order: the container is already on its way
        try:
            check_id(container_id, "container id")
        except ValueError as exc:
            self._events.put_nowait(ContainerEvent(container_id, "exited", reason=str(exc)))
            return
        pooled = None
        if self.pool is not None and _poolable(spec):
            pooled = self.pool.take(spec)
            self.pool.note(spec)
        container = self._container(spec, pooled)
        if order_ms is not None:
            container.timings["order_ms"] = order_ms
        self.containers[container_id] = container
        task = self._spawn(container.run())
        self._runs[container_id] = task
        if self.pool is not None and _poolable(spec):
            self._spawn(self._refill(container, task))

        def forget(_: asyncio.Task[None]) -> None:
            self.containers.pop(container_id, None)
            self._runs.pop(container_id, None)

        task.add_done_callback(forget)

    async def _stop(self, container_id: str) -> None:
        container = self.containers.get(container_id)
        run = self._runs.get(container_id)
        if container is None or run is None:
            # Unknown here (already gone, or from before a restart): say so, so the gateway's view converges.
            await self._emit(ContainerEvent(container_id, "exited", reason="not running on this worker"))
            return
        await container.stop()
        await asyncio.shield(run)
        if self.pool is not None and _poolable(container.spec):
            self.pool.note(container.spec)  # scaled down now, likely up again soon
            await self.pool.fill(container.spec)

    def _container(self, spec: ContainerSpec, pooled: Pooled | None = None) -> Container:
        return Container(
            spec,
            runtime=self.runtime,
            dirs=self.dirs,
            shipper=self.shipper,
            emit=self._emit,
            prepare=self._prepare,
            grace=self.settings.stop_grace_seconds,
            home=self.settings.home.root,
            root_of=self.image_root,
            listen=self.listen,
            pooled=pooled,
            gpus=self.gpus,
            weights=self.weights,
            models_url=self.settings.models_url,
            fetch_started=self._heartbeat_now.set,
        )

    async def _prefetch(self, model: str, models_url: str | None) -> None:
        """Warm the weight cache ahead of a rollout: fetch (once) and let go at once, nothing pinned."""
        endpoint = self.settings.models_url or models_url
        try:
            held = await self.weights.acquire(ModelRef.parse(model), endpoint)
        except Exception as exc:  # a bad name, an unknown model, an unreachable reservoir: say so, keep going
            log.warning("cannot prefetch model weights", extra={"model": model, "error": str(exc)})
            return
        self.weights.release(held)
        log.info("model weights prefetched", extra={"model": model, "commit": held.commit})
        self._heartbeat_now.set()  # placement learns at once that this worker holds them

    def weights_report(self) -> WeightsReport:
        """The weight cache for the heartbeat: the commits it holds, and bytes fetched for containers waiting."""
        held: set[str] = set()
        for entry in self.weights.held():
            held.add(f"{entry['repo']}@{entry['commit']}")
            held.update(f"{entry['repo']}@{revision}" for revision in entry["revisions"])
        fetching = {}
        for container in list(self.containers.values()):
            if not container.fetching_models:
                continue
            for text in container.spec.models:
                repo, _at, revision = text.partition("@")
                progress = self.weights.progress.get((repo, revision))
                if progress is not None:
                    fetching[container.id] = progress.to_json()
                    break
        return WeightsReport(held=sorted(held), fetching=fetching)

    async def _build_launch(self, spec: ContainerSpec, work_dir: Path) -> LaunchSpec:
        launch, _timings = await self._container(spec).launch_spec(work_dir)
        return launch

    async def _refill(self, container: Container, run: asyncio.Task[None]) -> None:
        """Once the new container is ready (not before: both would share the cpu), make its successor."""
        assert self.pool is not None
        ready = asyncio.ensure_future(container.ready.wait())
        try:
            await asyncio.wait({ready, run}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if container.ready.is_set():
            await self.pool.fill(container.spec)

    async def _prepare(self, spec: ContainerSpec) -> tuple[Path, Path, Path, dict[str, float]]:
        """Resolve the image and the code (concurrently); return venv, python, code dir and timings."""
        timings: dict[str, float] = {}

        async def image() -> tuple[Path, Path]:
            mark = time.perf_counter()
            try:
                return await self._image(spec.image_id)
            finally:
                timings["image_ms"] = round((time.perf_counter() - mark) * 1000, 3)

        async def code() -> Path:
            mark = time.perf_counter()
            try:
                return await self._code_dir(spec.code_hash)
            finally:
                timings["code_ms"] = round((time.perf_counter() - mark) * 1000, 3)

        (venv, python), code_dir = await asyncio.gather(image(), code())
        return venv, python, code_dir, timings

    def image_root(self, image_id: str) -> tuple[Path | None, tuple[Path, ...]]:
        """The root filesystem of an image resolved by ``_image``: (None, ()) means the engine's default."""
        image = self.images.known(image_id)
        return (image.rootfs, image.layers) if image is not None else (None, ())

    async def _image(self, image_id: str) -> tuple[Path, Path]:
        """The image's venv and interpreter on this machine (pulled from the gateway when not shared)."""
        image = await self.images.resolve(image_id)
        return image.venv, image.python

    async def _code_dir(self, code_hash: str) -> Path:
        dest = self.dirs.code / check_hash(code_hash)
        if dest.exists():
            return dest
        task = self._code.get(code_hash)
        if task is None:
            task = asyncio.ensure_future(self._download_code(code_hash, dest))
            self._code[code_hash] = task
            task.add_done_callback(lambda _: self._code.pop(code_hash, None))
        return await asyncio.shield(task)

    async def _download_code(self, code_hash: str, dest: Path) -> Path:
        from ..images import extract_code

        try:
            data = await self.client.code(code_hash)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot download code {code_hash[:12]}: {exc}") from exc
        if len(code_hash) == 64 and hashlib.sha256(data).hexdigest() != code_hash:
            raise RuntimeError(f"code {code_hash[:12]} arrived with a different hash; refusing it")
        log.info("code downloaded", extra={"code_hash": code_hash, "bytes": len(data)})
        return await asyncio.to_thread(extract_code, data, dest)


def _poolable(spec: ContainerSpec) -> bool:
    """Whether containers for ``spec`` may be made ahead: not with GPUs (they exist only once placed), nor
    with models (a container made ahead would hold its weights in the cache without running)."""
    return not spec.gpus and not spec.models


async def run_worker(settings: WorkerSettings) -> None:
    """Run a worker until cancelled; on the way out, stop every container it started."""
    worker = Worker(settings)
    try:
        await worker.run()
    finally:
        await asyncio.shield(worker.shutdown())
