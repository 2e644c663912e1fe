"""What a container with GPUs gets: device nodes, driver files, environment (pure functions).

Like ``nvidia-container-cli``, but only the compute part and without a hook:
the worker resolves everything before the container starts and hands the
runtime plain data (devices for ``linux.devices`` and the device cgroup,
read-only bind mounts, variables). Whole GPUs and fractions get the same
nodes; a fraction also gets its MPS pipe folder and never sees another GPU.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..runtime import Device
from ._inventory import GpuDevice, GpuError

# The driver's user-space libraries a CUDA program may load (no graphics, no video).
DRIVER_LIBRARIES = (
    "libcuda.so.1",
    "libcuda.so",
    "libcudadebugger.so.1",
    "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm.so.4",
    "libnvidia-gpucomp.so",
    "libnvidia-cfg.so.1",
    "libnvidia-opencl.so.1",
    "libnvidia-allocator.so.1",
)
DRIVER_BINARIES = ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced")
# Nodes every CUDA program opens besides its GPUs' own /dev/nvidiaN.
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
MPS_INSIDE = Path("/cove/mps")
_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\((?P<flags>[^)]*)\)\s+=>\s+(?P<path>\S+)\s*$")


@dataclasses.dataclass(frozen=True)
class DriverFiles:
    """Host paths of the driver's libraries and tools, mounted read-only at the same paths."""

    libraries: tuple[Path, ...] = ()
    binaries: tuple[Path, ...] = ()


@dataclasses.dataclass(frozen=True)
class GpuGrant:
    """Everything the runtime needs to give one container its GPUs (or its share of one)."""

    devices: tuple[Device, ...]
    mounts: tuple[tuple[Path, Path, bool], ...]  # (host path, path inside, writable)
    env: Mapping[str, str]


def parse_ldconfig(text: str, names: Iterable[str] = DRIVER_LIBRARIES, arch: str = "x86-64") -> tuple[Path, ...]:
    """Paths of ``names`` in ``ldconfig -p`` output, for one architecture (first hit per name)."""
    wanted = set(names)
    found: dict[str, Path] = {}
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match is None:
            continue
        path = Path(match["path"])
        if path.name in wanted and path.name not in found and arch in match["flags"]:
            found[path.name] = path
    return tuple(found[name] for name in names if name in found)


def find_driver_files(which: Callable[[str], str | None] = shutil.which) -> DriverFiles:
    """Look the driver's files up as the dynamic linker and ``$PATH`` would; empty when there is no driver."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    binaries = tuple(Path(found) for name in DRIVER_BINARIES if (found := which(name)))
    return DriverFiles(libraries=parse_ldconfig(listing), binaries=binaries)


def device_nodes(gpus: Sequence[GpuDevice], stat: Callable[[str], os.stat_result] = os.stat) -> tuple[Device, ...]:
    """The nodes of exactly these GPUs plus the control nodes, with the host's major/minor numbers."""
    paths = []
    for gpu in gpus:
        if gpu.minor is None:
            raise GpuError(f"GPU {gpu.uuid} has no device node (a fake GPU cannot be given to a container)")
        paths.append(f"/dev/nvidia{gpu.minor}")
    out = []
    for path in [*paths, *CONTROL_NODES]:
        try:
            info = stat(path)
        except FileNotFoundError:
            if path == "/dev/nvidia-uvm-tools":
                continue  # optional: profilers only
            raise GpuError(f"the GPU device node {path} is missing on this worker") from None
        out.append(Device(Path(path), os.major(info.st_rdev), os.minor(info.st_rdev)))
    return tuple(out)


def gpu_env(
    gpus: Sequence[GpuDevice], memory_mib: int | None = None, compute: int | None = None, mps_dir: Path = MPS_INSIDE
) -> dict[str, str]:
    """Variables that pick the GPUs by UUID (never by index, which differs inside and out)."""
    uuids = ",".join(g.uuid for g in gpus)
    env = {
        "NVIDIA_VISIBLE_DEVICES": uuids,
        "CUDA_VISIBLE_DEVICES": uuids,
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
    }
    if memory_mib is not None:
        env["COVE_GPU_MEMORY_MIB"] = str(memory_mib)
        env["COVE_GPU_COMPUTE"] = str(compute)
        env["CUDA_MPS_PIPE_DIRECTORY"] = str(mps_dir / "pipe")
        env["CUDA_MPS_LOG_DIRECTORY"] = str(mps_dir / "log")
    return env


def driver_mounts(driver: DriverFiles) -> tuple[tuple[Path, Path, bool], ...]:
    return tuple((path, path, False) for path in (*driver.libraries, *driver.binaries))


def whole_gpu_grant(gpus: Sequence[GpuDevice], devices: Sequence[Device], driver: DriverFiles) -> GpuGrant:
    """Whole GPUs: their nodes and the driver; no MPS."""
    return GpuGrant(devices=tuple(devices), mounts=driver_mounts(driver), env=gpu_env(gpus))


def fraction_grant(
    gpu: GpuDevice,
    devices: Sequence[Device],
    driver: DriverFiles,
    mps_dir: Path,
    memory_mib: int,
    compute: int,
    isolated: bool = True,
) -> GpuGrant:
    """A fraction: the GPU's nodes, the driver, and the container's own MPS daemon's folder (read-write).

    Not ``isolated`` (the process engine): no mounts, and the variables name the host folder.
    """
    if not isolated:
        return GpuGrant(devices=(), mounts=(), env=gpu_env([gpu], memory_mib, compute, mps_dir))
    return GpuGrant(
        devices=tuple(devices),
        mounts=(*driver_mounts(driver), (mps_dir, MPS_INSIDE, True)),
        env=gpu_env([gpu], memory_mib, compute),
    )
