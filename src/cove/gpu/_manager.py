"""The worker's GPU bookkeeping: what it reports, and giving containers their GPUs.

``acquire`` turns the shares the scheduler placed (whole GPUs, or one fraction)
into a ``GpuGrant`` for the runtime, starting the container's MPS daemon first
for a fraction; ``release`` stops it with the container. With a fake
inventory nothing real is started: the grant carries only the environment and
the MPS plan is kept for inspection, and the log says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._inventory import GpuDevice, GpuError, Inventory
from ._mps import CONTROL_BINARY, MpsDaemon, MpsPlan
from ._spec import DriverFiles, GpuGrant, device_nodes, find_driver_files, fraction_grant, gpu_env, whole_gpu_grant

log = logging.getLogger("cove.gpu")

CGROUP_MARK = "/cove/"  # containers' cgroups are /cove/<container id> (see cove.runtime._crun)


class GpuManager:
    """One per worker."""

    def __init__(
        self,
        inventory: Inventory,
        mps_root: Path,
        *,
        driver: DriverFiles | None = None,
        mps_binary: str = CONTROL_BINARY,
        stat: Callable[[str], os.stat_result] = os.stat,
    ) -> None:
        self.inventory = inventory
        self.mps_root = mps_root
        self.mps_binary = mps_binary
        self._stat = stat
        self._driver = driver
        self._by_uuid = {d.uuid: d for d in inventory.devices()}
        self.daemons: dict[str, MpsDaemon] = {}
        self.plans: dict[str, MpsPlan] = {}  # every plan made, real or fake (fake ones are never run)

    @property
    def fake(self) -> bool:
        return self.inventory.kind == "fake"

    def report(self) -> list[dict[str, Any]]:
        """The inventory as the gateway wants it at registration."""
        return [d.to_dict() for d in self.inventory.devices()]

    def driver(self) -> DriverFiles:
        if self._driver is None:
            self._driver = find_driver_files()
        return self._driver

    def _devices(self, shares: Sequence[Mapping[str, Any]]) -> list[GpuDevice]:
        out = []
        for share in shares:
            device = self._by_uuid.get(str(share.get("uuid")))
            if device is None:
                raise GpuError(f"GPU {share.get('uuid')} is not on this worker")
            out.append(device)
        return out

    async def acquire(
        self, container_id: str, shares: Sequence[Mapping[str, Any]], *, isolated: bool = True
    ) -> GpuGrant:
        """The grant for these shares; for a fraction, its MPS daemon runs when this returns.

        Not ``isolated`` (the process engine): only variables; the process sees every device anyway.
        """
        gpus = self._devices(shares)
        fractions = [s for s in shares if not s.get("whole", True)]
        if fractions and len(shares) != 1:
            raise GpuError("a fraction of a GPU comes alone: one share of one GPU")
        if not fractions:
            if self.fake:
                log.warning(
                    "fake GPUs: the container gets their variables but no device", extra={"container_id": container_id}
                )
                return GpuGrant(devices=(), mounts=(), env=gpu_env(gpus))
            if not isolated:
                return GpuGrant(devices=(), mounts=(), env=gpu_env(gpus))
            return whole_gpu_grant(gpus, device_nodes(gpus, self._stat), self.driver())
        share, gpu = fractions[0], gpus[0]
        memory, compute = int(share["memory_mib"]), int(share["compute"])
        plan = MpsPlan(self.mps_root / container_id, gpu.uuid, memory, compute, self.mps_binary)
        self.plans[container_id] = plan
        if self.fake:
            log.warning(
                "fake GPUs: no MPS daemon started; limits are not enforced",
                extra={"container_id": container_id, "commands": plan.limit_commands()},
            )
            return GpuGrant(devices=(), mounts=(), env=gpu_env([gpu], memory, compute))
        devices = device_nodes([gpu], self._stat) if isolated else ()
        driver = self.driver() if isolated else DriverFiles()
        self.mps_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        daemon = MpsDaemon(plan)
        await daemon.start()  # GpuError: the container fails with that reason, never runs unlimited
        self.daemons[container_id] = daemon
        return fraction_grant(gpu, devices, driver, plan.root, memory, compute, isolated)

    async def release(self, container_id: str) -> None:
        """Stop the container's MPS daemon, if it has one; safe to call twice."""
        self.plans.pop(container_id, None)
        daemon = self.daemons.pop(container_id, None)
        if daemon is not None:
            await daemon.stop()

    async def close(self) -> None:
        for container_id in list(self.daemons):
            await self.release(container_id)

    def heartbeat(self, containers: Iterable[str]) -> dict[str, Any]:
        """Live usage per GPU and GPU memory per container, for the gateway (None where unmeasured)."""
        if not self._by_uuid:
            return {}
        known = set(containers)
        per_container: dict[str, int] = {}
        for proc in self.inventory.processes():
            owner = self.container_of(proc.pid)
            if owner in known and proc.memory_used_mib is not None:
                per_container[owner] = per_container.get(owner, 0) + proc.memory_used_mib
        return {
            "gpus": [u.to_dict() for u in self.inventory.usage()],
            "gpu_containers": per_container,
        }

    def container_of(self, pid: int) -> str | None:
        """Which container a GPU process belongs to: by its cgroup, or (an MPS server) by its daemon."""
        try:
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return None
        for line in cgroups.splitlines():
            path = line.split(":", 2)[-1]
            if CGROUP_MARK in path:
                return path.split(CGROUP_MARK, 1)[1].split("/", 1)[0]
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        for container_id, daemon in self.daemons.items():
            if daemon.pid == parent:
                return container_id
        return None


def mps_root(worker_name: str, private_dir: Path) -> Path:
    """Where a worker keeps its containers' MPS folders.

    The MPS server runs as the container's mapped uid and reaches its pipes by
    their host path, so as root this is a world-traversable folder under
    ``/run/cove`` (``$COVE_MPS_DIR`` overrides); otherwise the worker's own folder.
    """
    configured = os.environ.get("COVE_MPS_DIR")
    if configured:
        return Path(configured) / worker_name
    if os.geteuid() == 0:
        return Path("/run/cove/mps") / worker_name
    return private_dir / "mps"
