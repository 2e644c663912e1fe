"""What GPUs this machine has and how busy they are, behind one interface.

``NvmlInventory`` asks the driver through NVML (``nvidia-ml-py``, imported
only when used); ``FakeInventory`` reads a list from ``COVE_FAKE_GPUS`` (JSON
text, or the path of a JSON file) so placement, packing and the exact commands
and container spec can be exercised on machines without a GPU; ``NoGpus`` is
what a machine without NVIDIA hardware reports. ``detect_inventory`` picks one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._wire.sizes import parse_memory
from ..exceptions import ConfigError

log = logging.getLogger("cove.gpu")

FAKE_ENV = "COVE_FAKE_GPUS"


class GpuError(RuntimeError):
    """A GPU could not be given to a container; the message says why, for the user."""


@dataclasses.dataclass(frozen=True)
class GpuDevice:
    """One GPU as a worker reports it when it registers."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    minor: int | None = None  # the N of /dev/nvidiaN; None on a fake GPU

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "memory_mib": self.memory_mib}


@dataclasses.dataclass(frozen=True)
class GpuUsage:
    """Live figures for one GPU; None where the inventory cannot measure (a fake one)."""

    uuid: str
    utilization: float | None = None  # percent of time a kernel ran, over the driver's last sample
    memory_used_mib: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GpuProcess:
    """A process that holds GPU memory (to attribute usage to containers)."""

    uuid: str
    pid: int
    memory_used_mib: int | None


class Inventory(Protocol):
    """The GPUs of this machine."""

    kind: str  # "nvml", "fake" or "none"

    def devices(self) -> tuple[GpuDevice, ...]: ...

    def usage(self) -> tuple[GpuUsage, ...]: ...

    def processes(self) -> tuple[GpuProcess, ...]: ...


class NoGpus:
    """A machine without NVIDIA GPUs (or without a working driver)."""

    kind = "none"

    def devices(self) -> tuple[GpuDevice, ...]:
        return ()

    def usage(self) -> tuple[GpuUsage, ...]:
        return ()

    def processes(self) -> tuple[GpuProcess, ...]:
        return ()


class FakeInventory:
    """GPUs that exist only in a description: for tests and machines without GPUs.

    Each entry needs ``name`` and ``memory`` (``"80Gi"`` or MiB); ``uuid`` and
    ``index`` default to ``GPU-fake-<worker>-<n>`` and the position, so two
    fake workers never report the same card. ``utilization`` (percent) and
    ``memory_used`` (a size) are the live figures it reports, as given: nothing
    is measured (without them it reports none, as it cannot measure).
    """

    kind = "fake"

    def __init__(self, devices: Sequence[GpuDevice], figures: Sequence[GpuUsage] = ()) -> None:
        self._devices = tuple(devices)
        self._figures = {usage.uuid: usage for usage in figures}

    @classmethod
    def parse(cls, text: str, owner: str = "local") -> FakeInventory:
        """Build from JSON text or the path of a JSON file; ``ConfigError`` names what is wrong."""
        source = text.strip()
        if source and source[0] not in "[{":
            try:
                source = Path(source).read_text()
            except OSError as exc:
                raise ConfigError(f"{FAKE_ENV}: cannot read {text!r}: {exc.strerror}") from None
        try:
            data = json.loads(source)
        except ValueError as exc:
            raise ConfigError(f"{FAKE_ENV} is not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise ConfigError(f'{FAKE_ENV} must be a JSON list like [{{"name": "H100", "memory": "80Gi"}}]')
        devices = []
        figures: list[GpuUsage] = []
        for position, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "memory" not in entry:
                raise ConfigError(f"{FAKE_ENV}[{position}] must have a name and a memory size")
            try:
                memory = parse_memory(entry["memory"])
            except ConfigError as exc:
                raise ConfigError(f"{FAKE_ENV}[{position}]: {exc}") from None
            index = entry.get("index", position)
            uuid = entry.get("uuid", f"GPU-fake-{owner}-{position}")
            if not isinstance(index, int) or not isinstance(uuid, str):
                raise ConfigError(f"{FAKE_ENV}[{position}]: index must be an integer and uuid a string")
            devices.append(GpuDevice(index=index, uuid=uuid, name=entry["name"], memory_mib=memory))
            if "utilization" in entry or "memory_used" in entry:
                figures.append(_stated_usage(entry, uuid, position))
        return cls(devices, figures)

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices

    def usage(self) -> tuple[GpuUsage, ...]:
        return tuple(self._figures.get(d.uuid, GpuUsage(d.uuid)) for d in self._devices)

    def processes(self) -> tuple[GpuProcess, ...]:
        return ()


def _stated_usage(entry: Mapping[str, Any], uuid: str, position: int) -> GpuUsage:
    """The live figures a fake entry states; ``ConfigError`` names a wrong one."""
    utilization = entry.get("utilization")
    if utilization is not None and (
        isinstance(utilization, bool) or not isinstance(utilization, int | float) or not 0 <= utilization <= 100
    ):
        raise ConfigError(f"{FAKE_ENV}[{position}]: utilization must be a percentage from 0 to 100")
    used = entry.get("memory_used")
    try:
        used_mib = None if used is None else parse_memory(used)
    except ConfigError as exc:
        raise ConfigError(f"{FAKE_ENV}[{position}]: memory_used: {exc}") from None
    return GpuUsage(uuid, None if utilization is None else float(utilization), used_mib)


class NvmlInventory:
    """The real GPUs, through NVML. ``GpuError`` if NVML cannot start (no driver)."""

    kind = "nvml"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise GpuError(f"nvidia-ml-py is not installed: {exc}") from None
        self._nvml: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise GpuError(f"NVML cannot start (no NVIDIA driver?): {exc}") from None
        self._devices = tuple(self._read_devices())

    def _read_devices(self) -> list[GpuDevice]:
        nvml = self._nvml
        out = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            out.append(
                GpuDevice(
                    index=index,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_mib=int(memory),
                    minor=int(nvml.nvmlDeviceGetMinorNumber(handle)),
                )
            )
        return out

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices

    def usage(self) -> tuple[GpuUsage, ...]:
        nvml = self._nvml
        out = []
        for device in self._devices:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(device.index)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                out.append(GpuUsage(device.uuid, float(rates.gpu), int(memory.used // (1024 * 1024))))
            except nvml.NVMLError as exc:
                log.warning("cannot read GPU usage", extra={"uuid": device.uuid, "error": str(exc)})
                out.append(GpuUsage(device.uuid))
        return tuple(out)

    def processes(self) -> tuple[GpuProcess, ...]:
        nvml = self._nvml
        out = []
        for device in self._devices:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(device.index)
                running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except nvml.NVMLError:
                continue
            for proc in running:
                used = getattr(proc, "usedGpuMemory", None)
                out.append(GpuProcess(device.uuid, int(proc.pid), None if used is None else int(used) // (1024 * 1024)))
        return tuple(out)


def detect_inventory(env: Mapping[str, str] | None = None, owner: str = "local") -> Inventory:
    """The fake inventory when ``COVE_FAKE_GPUS`` is set, else NVML when a driver answers, else none."""
    environ = os.environ if env is None else env
    fake = environ.get(FAKE_ENV)
    if fake:
        inventory = FakeInventory.parse(fake, owner)
        log.warning("using fake GPUs; containers get no real device", extra={"count": len(inventory.devices())})
        return inventory
    if not any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version")):
        return NoGpus()
    try:
        return NvmlInventory()
    except GpuError as exc:
        log.warning("NVIDIA device files exist but NVML does not answer; reporting no GPUs", extra={"error": str(exc)})
        return NoGpus()
