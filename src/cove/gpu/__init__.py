"""GPUs: discovery (NVML, or a fake inventory), whole-GPU grants, and MPS-enforced fractions.

Nothing here is needed on a machine without GPUs: NVML is imported only when
a driver is present, and such a worker simply reports no GPUs.
"""

from ._inventory import (
    FAKE_ENV,
    FakeInventory,
    GpuDevice,
    GpuError,
    GpuProcess,
    GpuUsage,
    Inventory,
    NoGpus,
    NvmlInventory,
    detect_inventory,
)
from ._manager import GpuManager, mps_root
from ._mps import MpsDaemon, MpsPlan
from ._spec import (
    DriverFiles,
    GpuGrant,
    device_nodes,
    find_driver_files,
    fraction_grant,
    parse_ldconfig,
    whole_gpu_grant,
)

__all__ = [
    "FAKE_ENV",
    "DriverFiles",
    "FakeInventory",
    "GpuDevice",
    "GpuError",
    "GpuGrant",
    "GpuManager",
    "GpuProcess",
    "GpuUsage",
    "Inventory",
    "MpsDaemon",
    "MpsPlan",
    "NoGpus",
    "NvmlInventory",
    "detect_inventory",
    "device_nodes",
    "find_driver_files",
    "fraction_grant",
    "mps_root",
    "parse_ldconfig",
    "whole_gpu_grant",
]
