"""One container's life on this worker: prepare, listen, spawn, ready, exit, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cove._host.volumes import ensure_volume
from cove._net.gateway_socket import gateway_socket_path

from .._wire.names import check_mount_path, check_name
from .._wire.parameters import container_env
from .._wire.worker import ContainerEvent, ContainerSpec
from ..gpu import GpuError, GpuManager
from ..runtime import ContainerHandle, LaunchSpec, Runtime
from ._listen import Listen, unix_listener
from ._logs import ContainerLog, LogShipper
from ._models import ModelMounts, acquire_models, endpoint_for, release_models
from ._paths import WorkerDirs, check_id, force_rmtree
from ._pool import Pooled
from ._relay import relay_socket_path
from ._site import ensure_platform_site
from ._tracing_env import tracing_env
from ._weights import WeightCache, WeightsError

log = logging.getLogger("cove.worker")

SITE_ENV = "COVE_PLATFORM_SITE"
SITE_INSIDE = Path("/cove/site")
GATEWAY_INSIDE = Path("/run/cove")

Emit = Callable[[ContainerEvent], Awaitable[None]]
Prepare = Callable[[ContainerSpec], Awaitable[tuple[Path, Path, Path, dict[str, float]]]]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


class Container:
    """Drives one container; :meth:`run` returns after its ``exited`` event was queued."""

    def __init__(
        self,
        spec: ContainerSpec,
        *,
        runtime: Runtime,
        dirs: WorkerDirs,
        shipper: LogShipper,
        emit: Emit,
        prepare: Prepare,
        grace: float,
        home: Path | None = None,
        root_of: Callable[[str], tuple[Path | None, tuple[Path, ...]]] | None = None,
        pooled: Pooled | None = None,
        listen: Listen = unix_listener,
        gpus: GpuManager | None = None,
        weights: WeightCache | None = None,
        models_url: str | None = None,
        fetch_started: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.weights = weights  # the machine's weight cache, for a spec with ``models``
        self.models_url = models_url  # the worker's own reservoir setting; else the spec's
        self.models: ModelMounts | None = None  # what it holds in the cache until it exits
        self.fetching_models = False  # waiting for the cache: the heartbeat reports bytes fetched
        self.fetch_started = fetch_started  # tells the worker to report progress now, not at the next beat
        self.gpus = gpus  # gives the container the GPUs placement chose (and starts its MPS daemon)
        self.listen = listen  # unix socket beside the gateway, TCP port on a remote worker
        self.pooled = pooled  # made ahead by the worker's pool: only ``crun start`` is left to do
        self.ready = asyncio.Event()
        self.id = spec.container_id
        self.runtime = runtime
        self.dirs = dirs
        self.shipper = shipper
        self.emit = emit
        self.prepare = prepare
        self.grace = grace
        self.home = home
        self.root_of = root_of
        self.handle: ContainerHandle | None = None
        self.timings: dict[str, float] = {}  # phases known before the start (``order_ms``), reported with ready
        self.stop_requested = False
        self._spawned = asyncio.Event()

    def _volumes(self, spec: ContainerSpec) -> tuple[tuple[Path, str, str], ...]:
        """Host folders of the spec's volumes (on this machine's Cove home, shared with the gateway)."""
        if not spec.volumes:
            return ()
        if self.home is None:
            raise RuntimeError("this worker has no Cove home for volumes")
        out = []
        for mount_path, name in spec.volumes:
            check_name("volume", name)
            check_mount_path(mount_path)
            out.append((ensure_volume(self.home, check_id(spec.workspace_id, "workspace id"), name), mount_path, name))
        return tuple(out)

    async def _platform(self) -> tuple[dict[str, str], tuple[tuple[Path, str, str], ...]]:
        """What lets code in the container call the gateway: the platform site and the gateway's socket.

        Both are mounted into isolated containers (the socket's folder, not the
        network: containers keep none) at fixed paths; the process engine gets
        the host paths. The workspace token arrives with the order's secrets.
        """
        if self.spec.kind == "sandbox":
            return {}, ()  # a sandbox runs code nobody reviewed: it gets no way to act for the workspace
        isolated = self.runtime.isolated
        site = await asyncio.to_thread(ensure_platform_site, self.dirs.root / "site")
        env = {SITE_ENV: str(SITE_INSIDE if isolated else site), **tracing_env()}
        mounts = [(site, str(SITE_INSIDE), "cove-platform-site")]
        # A worker on another machine than its gateway serves a relay to it (see ``_relay``); beside the
        # gateway, the gateway's own socket is mounted.
        relay = relay_socket_path(self.dirs.root)
        socket = gateway_socket_path(self.home) if self.home is not None else None
        if relay.is_socket():
            socket = relay
        if socket is not None and socket.is_socket():
            inside = GATEWAY_INSIDE / socket.name
            env["COVE_GATEWAY"] = f"unix:{inside if isolated else socket}"
            mounts.append((socket.parent, str(GATEWAY_INSIDE), "cove-gateway"))
        return env, tuple(mounts)

    async def _with_gpus(self, launch: LaunchSpec) -> LaunchSpec:
        """Add the placed GPUs: device nodes, driver files, variables; for a fraction its MPS daemon first."""
        if self.gpus is None:
            raise GpuError("this worker has no GPUs to give")
        grant = await self.gpus.acquire(self.id, self.spec.gpus, isolated=self.runtime.isolated)
        return dataclasses.replace(
            launch,
            env={**launch.env, **grant.env},
            devices=grant.devices,
            extra_mounts=launch.extra_mounts + tuple(grant.mounts),
        )

    async def _with_models(self, launch: LaunchSpec, work_dir: Path) -> LaunchSpec:
        """Take the spec's models from the weight cache (fetched once per machine) and show them read-only."""
        if self.weights is None:
            raise WeightsError("this worker has no weight cache")
        endpoint = endpoint_for(self.spec, self.models_url)
        self.fetching_models = True
        if self.fetch_started is not None:
            self.fetch_started()
        try:
            self.models = await acquire_models(
                self.weights, self.spec, endpoint, work_dir, isolated=self.runtime.isolated
            )
        finally:
            self.fetching_models = False
        return dataclasses.replace(
            launch,
            env={**launch.env, **self.models.env},
            extra_mounts=launch.extra_mounts + self.models.mounts,
        )

    async def stop(self) -> None:
        """Ask for a stop; the run task reports the exit."""
        self.stop_requested = True
        if self.handle is not None:
            await self.handle.stop(self.grace)

    async def run(self) -> None:
        started = time.perf_counter()
        socket_path = self.pooled.socket_path if self.pooled else self.dirs.socket_path(self.id)
        work_dir = self.pooled.work_dir if self.pooled else self.dirs.work / self.id
        try:
            await self._run(started, socket_path, work_dir)
        except Exception as exc:
            log.exception("container failed to start", extra={"container_id": self.id})
            await self.emit(ContainerEvent(self.id, "exited", reason=f"the worker could not start it: {exc}"))
        finally:
            if self.gpus is not None and self.spec.gpus:
                await self.gpus.release(self.id)  # the MPS daemon goes with the container
            if self.weights is not None:
                release_models(self.weights, self.models)  # its weights may be evicted from now on
                self.models = None
            socket_path.unlink(missing_ok=True)
            self.dirs.pid_file(self.id).unlink(missing_ok=True)
            force_rmtree(work_dir)

    async def launch_spec(self, work_dir: Path) -> tuple[LaunchSpec, dict[str, float]]:
        """Resolve image and code and describe the container for the engine (also used to make one ahead)."""
        spec = self.spec
        venv, python, code_dir, timings = await self.prepare(spec)
        work_dir.mkdir(parents=True, exist_ok=True)
        rootfs, layers = self.root_of(spec.image_id) if self.root_of is not None else (None, ())
        platform_env, platform_mounts = await self._platform()
        launch = LaunchSpec(
            container_id=self.id,
            python=python,
            venv=venv,
            code_dir=code_dir,
            work_dir=work_dir,
            pylib_dir=self.dirs.pylib,
            module=spec.module,
            function=spec.function,
            kind=spec.kind,
            concurrency=spec.concurrent_requests,
            env={**spec.env, **container_env(spec.class_parameters), **platform_env},
            secret_env=dict(spec.secret_env),
            volumes=self._volumes(spec) + platform_mounts,
            cpu_millis=spec.cpu_millis,
            memory_mib=spec.memory_mib,
            rootfs=rootfs,
            layers=layers,
            network=tuple(spec.network),
        )
        return launch, timings

    async def _run(self, started: float, socket_path: Path, work_dir: Path) -> None:
        spec = self.spec
        if self.pooled is not None:
            timings: dict[str, float] = dict(self.timings)
            if self.stop_requested:
                await self.pooled.created.discard()
                await self.emit(ContainerEvent(self.id, "exited"))
                return
            address = self.pooled.address
            await self.emit(ContainerEvent(self.id, "listening", address=address))
            self.handle = handle = await self.pooled.created.start(self.id, spec.secret_env)
        else:
            try:
                launch, timings = await self.launch_spec(work_dir)
                timings = {**self.timings, **timings}
                if spec.models:
                    launch = await self._with_models(launch, work_dir)
                if spec.gpus:
                    launch = await self._with_gpus(launch)
            except Exception as exc:  # any preparation failure is the container's exit reason
                log.warning("container preparation failed", extra={"container_id": self.id, "error": str(exc)})
                await self.emit(ContainerEvent(self.id, "exited", reason=str(exc)))
                return
            if self.stop_requested:
                await self.emit(ContainerEvent(self.id, "exited"))
                return
            mark = time.perf_counter()
            listener, address = self.listen(socket_path)
            timings["socket_ms"] = _ms(mark)
            try:
                # The gateway may connect from now on; its request waits in the backlog while we boot.
                await self.emit(ContainerEvent(self.id, "listening", address=address, timings=dict(timings)))
                self.handle = handle = await self.runtime.start(launch, listener)
            finally:
                listener.close()  # the runner holds the only copy now: the socket dies with it
        self.dirs.pid_file(self.id).write_text(str(handle.pid))
        output = ContainerLog(self.id, self.dirs.logs / f"{self.id}.log", self.shipper)
        pumps = [
            asyncio.ensure_future(output.pump(handle.stdout, "stdout")),
            asyncio.ensure_future(output.pump(handle.stderr, "stderr")),
        ]
        try:
            if self.stop_requested:
                await handle.stop(self.grace)
            elif await handle.wait_ready():
                timings.update(handle.timings)
                timings["total_ms"] = _ms(started)
                log.info("container ready", extra={"container_id": self.id, "timings": timings})
                self.ready.set()
                await self.emit(ContainerEvent(self.id, "ready", address=address, timings=timings))
            exit_code = await handle.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pumps), timeout=2)
        finally:
            for pump in pumps:
                pump.cancel()
            output.close()
        # The engine's explanation (OOMKilled) beats the runner's last words: a killed runner has none.
        reason = handle.exit_reason or (
            None if self.stop_requested else (output.reason() or f"the runner exited with code {exit_code}")
        )
        log.info("container exited", extra={"container_id": self.id, "exit_code": exit_code})
        await self.emit(ContainerEvent(self.id, "exited", exit_code=exit_code, reason=reason))
