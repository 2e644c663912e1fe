"""The OCI ``config.json`` of one container: isolation, limits and mounts.

Generated fresh for every start (a few hundred µs) from a :class:`Bundle`, the
engine-neutral description of what goes where; both crun and runc read the
same document. Paths inside the container are fixed (``/cove/...``) so user
code never sees the worker's layout on the host.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VENV = Path("/cove/venv")
CODE = Path("/cove/code")
WORK = Path("/cove/work")
PYLIB = Path("/cove/pylib")
TMP = Path("/tmp")  # the container's own tmpfs, not the host's /tmp

CPU_PERIOD_US = 100_000
ID_RANGE = 65_536  # uids and gids each container's user namespace maps

# Calls a serverless function has no business making. Most already fail for an
# unprivileged user without capabilities; the filter is the second wall, and
# it also closes calls that need no privilege but widen the kernel's attack
# surface (bpf, userfaultfd, io_uring, perf_event_open, keyrings).
DENIED_SYSCALLS: tuple[str, ...] = (
    "acct",
    "add_key",
    "bpf",
    "chroot",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
)
# clone() may not create namespaces either (that is unshare by another name).
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
EPERM = 1
ENOSYS = 38

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclasses.dataclass(frozen=True)
class Mount:
    """A read-only (unless ``writable``) bind mount of a host path into the container."""

    source: Path
    destination: Path
    writable: bool = False

    def to_oci(self) -> dict[str, Any]:
        options = ["rbind", "rprivate", "nosuid", "nodev", "rw" if self.writable else "ro"]
        return {"destination": str(self.destination), "type": "bind", "source": str(self.source), "options": options}


@dataclasses.dataclass(frozen=True)
class Device:
    """A character device the container may open (a GPU's nodes): created inside and allowed by the cgroup."""

    path: Path
    major: int
    minor: int
    file_mode: int = 0o666

    def to_oci(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "type": "c",
            "major": self.major,
            "minor": self.minor,
            "fileMode": self.file_mode,
            "uid": 0,
            "gid": 0,
        }

    def cgroup_rule(self) -> dict[str, Any]:
        return {"allow": True, "type": "c", "major": self.major, "minor": self.minor, "access": "rw"}


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mib: int
    cpu_millis: int
    pids: int
    tmp_mib: int
    shm_mib: int = 64
    nofile: int = 16_384


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Everything a container's config depends on, already resolved to host paths."""

    container_id: str
    rootfs: Path
    args: Sequence[str]
    env: Mapping[str, str]
    mounts: Sequence[Mount]
    limits: Limits
    host_id: int  # the host uid (and gid) that the container's root maps to
    cgroups_path: str
    cwd: Path = WORK
    network: bool = False
    # A network namespace made beforehand (an allow-listed network, see ._network) to join
    # instead of a fresh, loopback-only one.
    network_ns: str | None = None
    # (gid inside, gid on the host) mapped in addition to the container's own block and given
    # to its processes as supplementary groups (shared volumes).
    extra_gids: tuple[tuple[int, int], ...] = ()
    umask: int | None = None
    swap_limit: bool = False  # cgroup v2 only: v1 needs swap accounting that hosts often lack
    devices: Sequence[Device] = ()  # beyond the runtime's defaults: only these (a container's GPUs)


def seccomp_profile() -> dict[str, Any]:
    """Allow by default, refuse the calls above with EPERM (clone3 with ENOSYS so libc falls back to clone)."""
    rules: list[dict[str, Any]] = [
        {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    for flag in _CLONE_NAMESPACE_FLAGS:
        rules.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        )
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        # Listing every ABI of the machine closes the "call it through the 32-bit ABI" bypass:
        # an architecture not listed is killed outright by the filter.
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    }


def _rlimits(limits: Limits) -> list[dict[str, Any]]:
    """Explicit limits, never above what the worker itself may grant (it lacks CAP_SYS_RESOURCE)."""

    def capped(kind: int, name: str, wanted: int) -> dict[str, Any]:
        _soft, hard = resource.getrlimit(kind)
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        return {"type": name, "hard": value, "soft": value}

    return [
        capped(resource.RLIMIT_NOFILE, "RLIMIT_NOFILE", limits.nofile),
        capped(resource.RLIMIT_CORE, "RLIMIT_CORE", 0),
        # Counted per host uid, which is unique to the container: a second brake on fork bombs.
        capped(resource.RLIMIT_NPROC, "RLIMIT_NPROC", limits.pids),
    ]


def _resources(bundle: Bundle) -> dict[str, Any]:
    limits = bundle.limits
    memory_bytes = limits.memory_mib * 1024 * 1024
    memory: dict[str, Any] = {"limit": memory_bytes}
    if bundle.swap_limit:
        memory["swap"] = memory_bytes  # memory + swap: no swap at all
    return {
        "memory": memory,
        "cpu": {"quota": max(1000, limits.cpu_millis * CPU_PERIOD_US // 1000), "period": CPU_PERIOD_US},
        "pids": {"limit": limits.pids},
        "devices": [{"allow": False, "access": "rwm"}, *(device.cgroup_rule() for device in bundle.devices)],
    }


def _system_mounts(limits: Limits) -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "noexec", "strictatime", "mode=755", "size=64k"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={limits.shm_mib}m"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": str(TMP),
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={limits.tmp_mib}m"],
        },
    ]


def build_config(bundle: Bundle) -> dict[str, Any]:
    """The whole ``config.json`` for one container."""
    namespaces = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "user", "cgroup")]
    if bundle.network_ns is not None:
        namespaces.append({"type": "network", "path": bundle.network_ns})
    elif not bundle.network:
        namespaces.append({"type": "network"})  # a fresh one: only a loopback device
    id_map = [{"containerID": 0, "hostID": bundle.host_id, "size": ID_RANGE}]
    gid_map = id_map + [{"containerID": inside, "hostID": host, "size": 1} for inside, host in bundle.extra_gids]
    user: dict[str, Any] = {"uid": 0, "gid": 0}
    if bundle.extra_gids:
        user["additionalGids"] = [inside for inside, _host in bundle.extra_gids]
    if bundle.umask is not None:
        user["umask"] = bundle.umask
    caps: dict[str, list[str]] = {key: [] for key in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": user,
            "args": list(bundle.args),
            "env": [f"{key}={value}" for key, value in bundle.env.items()],
            "cwd": str(bundle.cwd),
            "capabilities": caps,
            "rlimits": _rlimits(bundle.limits),
            "noNewPrivileges": True,
        },
        "root": {"path": str(bundle.rootfs), "readonly": True},
        "hostname": "cove",
        "mounts": _system_mounts(bundle.limits) + [mount.to_oci() for mount in bundle.mounts],
        "linux": {
            "uidMappings": id_map,
            "gidMappings": gid_map,
            "namespaces": namespaces,
            "cgroupsPath": bundle.cgroups_path,
            "resources": _resources(bundle),
            "seccomp": seccomp_profile(),
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            **({"devices": [device.to_oci() for device in bundle.devices]} if bundle.devices else {}),
        },
    }
