"""Containers made ahead (``crun create``) for deployment versions that recently started one.

A cold start through ``crun run`` spends tens of milliseconds building
namespaces, mounts and the cgroup before Python even starts. After a
container of a deployment version starts or stops here, the worker makes one
more like it ahead of time, listening socket included, and parks it; the next
start order with the same spec only runs ``crun start``.

Ids: the scheduler names containers in the order it starts them, and the
worker cannot know that name ahead. A parked container therefore lives under a
worker-chosen id (``pool-...``: its crun id, cgroup, bundle, socket and work
folder) and is *adopted* by the next start order; the worker reports events and
logs under the scheduler's id, and the container's code learns that id (and
its secrets) only at ``crun start``, through the late-environment memfd.

Safety: a parked container is used only for a spec equal in every field but
the id and the secret values (same deployment, version, code, image, limits,
env, volumes, network, secret names). It is made without any secret: the
values (and the container's workspace token) come from the adopting order, so
a changed secret or a revoked token can never be served from the pool.
Parked containers of a deployment are dropped when a different spec of it
starts, when the gateway says the deployment stopped (``drain``), after
``ttl_seconds`` without a start or stop of their spec, and when the worker
stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from .._wire.worker import ContainerSpec
from ..runtime import LaunchSpec
from ._listen import Listen, unix_listener
from ._paths import WorkerDirs, force_rmtree

log = logging.getLogger("cove.worker")

POOL_PREFIX = "pool-"


class Created(Protocol):
    """What an engine returns for a container made ahead (see ``CrunRuntime.create``)."""

    @property
    def usable(self) -> bool: ...

    async def start(self, serve_as: str, secret_env: Any = None) -> Any: ...

    async def discard(self) -> None: ...


class CreatingRuntime(Protocol):
    async def create(self, spec: LaunchSpec, listener: Any) -> Any: ...


BuildLaunch = Callable[[ContainerSpec, Path], Awaitable[LaunchSpec]]


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """How many containers to keep made ahead, and for how long.

    ``per_spec``: parked containers per deployment version (0 turns the pool off);
    ``total``: the bound over all of them on this worker; ``ttl_seconds``: how long a
    spec counts as "recently scaled" after its last start or stop here.
    """

    per_spec: int = 1
    total: int = 4
    ttl_seconds: float = 120.0

    @classmethod
    def from_env(cls) -> PoolSettings:
        """``COVE_POOL_PER_SPEC``, ``COVE_POOL_TOTAL``, ``COVE_POOL_TTL_SECONDS`` override the defaults."""
        defaults = cls()
        try:
            return cls(
                per_spec=max(0, int(os.environ.get("COVE_POOL_PER_SPEC", defaults.per_spec))),
                total=max(0, int(os.environ.get("COVE_POOL_TOTAL", defaults.total))),
                ttl_seconds=max(1.0, float(os.environ.get("COVE_POOL_TTL_SECONDS", defaults.ttl_seconds))),
            )
        except ValueError as exc:
            raise ValueError(f"bad container pool setting: {exc}") from None


@dataclasses.dataclass(eq=False)
class Pooled:
    """One parked container and the host paths it owns until it is adopted or discarded."""

    key: str
    deployment_id: str
    created: Created
    socket_path: Path
    work_dir: Path
    address: str  # where the gateway reaches it (unix:path, or tcp:host:port on a remote worker)


def spec_key(spec: ContainerSpec) -> str:
    """Everything that shapes a made-ahead container: all but the id and the secret values, which
    (with the container's own token) reach it only at ``crun start``, from the adopting order."""
    data = spec.to_dict()
    data.pop("container_id", None)
    data.pop("secret_env", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class ContainerPool:
    """The worker's parked containers; all methods run on the worker's event loop."""

    def __init__(
        self,
        runtime: CreatingRuntime,
        dirs: WorkerDirs,
        build: BuildLaunch,
        settings: PoolSettings | None = None,
        listen: Listen = unix_listener,
    ) -> None:
        self.runtime = runtime
        self.listen = listen
        self.dirs = dirs
        self.build = build
        self.settings = settings or PoolSettings()
        self._parked: list[Pooled] = []
        self._filling: dict[str, int] = {}
        self._recent: dict[str, float] = {}  # spec key -> monotonic time of its last start or stop here
        self._deployment_of: dict[str, str] = {}
        self._closed = False
        self._discards: set[asyncio.Task[None]] = set()
        self._makes: set[asyncio.Task[Pooled]] = set()  # in flight: close() waits for them to clean up

    @property
    def enabled(self) -> bool:
        return self.settings.per_spec > 0 and self.settings.total > 0 and not self._closed

    def parked(self) -> list[Pooled]:
        return list(self._parked)

    def take(self, spec: ContainerSpec) -> Pooled | None:
        """A parked container for exactly this spec, now owned by the caller; None if there is none."""
        key = spec_key(spec)
        for entry in self._parked:
            if entry.key == key and entry.created.usable:
                self._parked.remove(entry)
                return entry
        return None

    def note(self, spec: ContainerSpec) -> None:
        """A container of ``spec`` started or stopped here: keep its kind ready, drop its deployment's other specs."""
        if not self.enabled:
            return
        key = spec_key(spec)
        self._recent[key] = time.monotonic()
        self._deployment_of[key] = spec.deployment_id
        stale = [p for p in self._parked if p.deployment_id == spec.deployment_id and p.key != key]
        for entry in stale:
            self._parked.remove(entry)
            self._discard_soon(entry)
        for old in [k for k, dep in self._deployment_of.items() if dep == spec.deployment_id and k != key]:
            self._recent.pop(old, None)
            self._deployment_of.pop(old, None)

    async def fill(self, spec: ContainerSpec) -> Pooled | None:
        """Make one container ahead for ``spec`` if the bounds allow; the new entry or None."""
        key = spec_key(spec)
        if not self.enabled or key not in self._recent:
            return None
        mine = sum(1 for p in self._parked if p.key == key) + self._filling.get(key, 0)
        if mine >= self.settings.per_spec or len(self._parked) + sum(self._filling.values()) >= self.settings.total:
            return None
        self._filling[key] = self._filling.get(key, 0) + 1
        making = asyncio.ensure_future(self._make(key, spec))
        self._makes.add(making)
        making.add_done_callback(self._makes.discard)
        try:
            # Shielded: a cancelled caller (the worker stopping) must not leave a half-made container behind.
            return await asyncio.shield(making)
        except Exception as exc:
            log.warning(
                "could not make a container ahead", extra={"deployment_id": spec.deployment_id, "error": str(exc)}
            )
            return None
        finally:
            self._filling[key] -= 1
            if not self._filling[key]:
                del self._filling[key]

    async def _make(self, key: str, spec: ContainerSpec) -> Pooled:
        pool_id = POOL_PREFIX + os.urandom(6).hex()
        socket_path = self.dirs.socket_path(pool_id)
        work_dir = self.dirs.work / pool_id
        try:
            # The id inside is only a placeholder: the real one arrives with crun start.
            launch = await self.build(dataclasses.replace(spec, container_id=pool_id, secret_env={}), work_dir)
            listener, address = self.listen(socket_path)
            try:
                created = await self.runtime.create(launch, listener)
            finally:
                listener.close()
        except BaseException:
            socket_path.unlink(missing_ok=True)
            force_rmtree(work_dir)
            raise
        entry = Pooled(key, spec.deployment_id, created, socket_path, work_dir, address)
        if self._closed or key not in self._recent:  # drained or closed while it was being made
            await self._discard(entry)
            raise RuntimeError("the spec was dropped while its container was being made")
        self._parked.append(entry)
        log.info("container made ahead", extra={"container_id": pool_id, "deployment_id": spec.deployment_id})
        return entry

    def drain(self, deployment_id: str) -> None:
        """The deployment stopped: forget its specs and discard its parked containers."""
        for key in [k for k, dep in self._deployment_of.items() if dep == deployment_id]:
            self._recent.pop(key, None)
            self._deployment_of.pop(key, None)
        for entry in [p for p in self._parked if p.deployment_id == deployment_id]:
            self._parked.remove(entry)
            self._discard_soon(entry)

    async def expire(self, now: float | None = None) -> int:
        """Discard parked containers whose spec has not started or stopped here within the ttl."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.settings.ttl_seconds
        for key in [k for k, seen in self._recent.items() if seen < cutoff]:
            self._recent.pop(key, None)
            self._deployment_of.pop(key, None)
        gone = [p for p in self._parked if p.key not in self._recent or not p.created.usable]
        for entry in gone:
            self._parked.remove(entry)
        await asyncio.gather(*(self._discard(entry) for entry in gone))
        return len(gone)

    async def run_expiry(self) -> None:
        """Loop: expire parked containers a few times per ttl."""
        while True:
            await asyncio.sleep(max(0.5, self.settings.ttl_seconds / 4))
            await self.expire()

    async def close(self) -> None:
        """Discard every parked container (worker shutdown); later fills make nothing."""
        self._closed = True
        parked, self._parked = self._parked, []
        # Containers still being made see ``_closed`` when done and discard themselves.
        await asyncio.gather(
            *(self._discard(entry) for entry in parked), *self._discards, *self._makes, return_exceptions=True
        )

    def _discard_soon(self, entry: Pooled) -> None:
        task = asyncio.ensure_future(self._discard(entry))
        self._discards.add(task)
        task.add_done_callback(self._discards.discard)

    def reap_leftovers(self) -> None:
        """Remove the sockets and work folders of parked containers a previous run left (crun state goes
        with the engine's own reaping)."""
        for folder in self.dirs.work.glob(POOL_PREFIX + "*"):
            force_rmtree(folder)
        with contextlib.suppress(OSError):
            for sock in self.dirs.run.glob(POOL_PREFIX + "*.sock"):
                sock.unlink(missing_ok=True)

    async def _discard(self, entry: Pooled) -> None:
        try:
            await entry.created.discard()
        except Exception:
            log.exception("discarding a parked container failed")
        finally:
            entry.socket_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                force_rmtree(entry.work_dir)
