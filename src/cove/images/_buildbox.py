"""Running a shell script as root in a build container over a read-only base.

The script (apt-get, the image's commands) sees a writable root: an overlay
whose lower folder is the Debian base and whose upper folder is the new
layer, so everything it changes lands in the layer and the base stays as it
was. It gets its own mount, pid, ipc, uts, user and network namespaces, the
runtime's seccomp filter, cgroup limits on memory, cpu and processes, and a
time limit.

Network: the only way out is :class:`._relay.IndexRelay`, to the apt source
(the reservoir's suite, or the Debian mirror when no reservoir is configured):
no host service and no other address is reachable, and names other than the
source's do not resolve.

User ids: the user namespace maps ids one to one. An unprivileged map was
tried and does not work for this box: the base's files belong to host root,
which an unprivileged map leaves unmapped (they show as ``nobody`` inside),
and capabilities in a user namespace reach only files whose owner is mapped,
so dpkg could neither replace files under ``/usr`` nor ``chown`` what it
unpacks. What the map keeps away: the box's capabilities (a Docker-like build
set) are those of its own user namespace, so they reach no host device, no
network configuration and no kernel module, and it sees only the overlay.

All of it happens in a thread of its own (see ``_buildcontainer.run_bundle``):
the thread enters a private mount namespace (so the overlay never appears on
the host, and crun accepts hosts with the cgroup "hybrid" layout), mounts,
runs crun, and unmounts. The namespace is freed with the thread, so a crash
cannot leave the mount behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..runtime import cgroups, mount_overlay, oci, unmount
from ._buildcontainer import BuildLimits, crun_binary, run_bundle, timed_out_line
from ._relay import IndexRelay, upstreams_for_url
from ._uv import LogFn

STATE_ROOT = Path("/run/cove/build")
CGROUP_PARENT = "/cove-build"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What Docker grants a build step: enough for dpkg (ownership, setuid bits, device nodes
# refused by the missing device cgroup rules anyway), nothing that administers the host.
_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
]
_ID_MAP = [{"containerID": 0, "hostID": 0, "size": 65_536}]


class BoxFailed(Exception):
    """The script exited non-zero (or crun could not run it); ``tail`` holds the last output lines."""

    def __init__(self, returncode: int, tail: Sequence[str]) -> None:
        super().__init__(f"the build container exited with status {returncode}")
        self.returncode = returncode
        self.tail = list(tail)


__all__ = ["BoxFailed", "box_config", "crun_binary", "run_in_box"]


def box_config(
    root: Path,
    script: str,
    hostname: str = "cove-build",
    *,
    netns: str | None = None,
    hosts: Path | None = None,
    cgroups_path: str | None = None,
    limits: BuildLimits | None = None,
) -> dict[str, Any]:
    """The OCI config of one build container (see the module docstring for what it may do).

    ``netns`` is the relay's namespace (None: a fresh one with only loopback);
    ``hosts`` a file bound read-only at ``/etc/hosts`` naming the apt source.
    """
    limits = limits or BuildLimits.from_env()
    caps = {key: list(_CAPABILITIES) for key in ("bounding", "effective", "permitted")}
    tmpfs = ["nosuid", "nodev", "mode=1777", f"size={limits.tmp_mib}m"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=64k"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "mode=1777"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": tmpfs},
    ]
    if hosts is not None:
        mounts.append({"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind", "ro"]})
    namespace_kinds = ("pid", "ipc", "uts", "mount", "user")
    namespaces: list[dict[str, str]] = [{"type": kind} for kind in namespace_kinds]
    namespaces.append({"type": "network", "path": netns} if netns is not None else {"type": "network"})
    linux: dict[str, Any] = {
        "uidMappings": _ID_MAP,
        "gidMappings": _ID_MAP,
        "namespaces": namespaces,
        "resources": {
            "memory": {"limit": limits.memory_mib * 1024 * 1024},
            "cpu": {
                "quota": max(1000, limits.cpu_millis * oci.CPU_PERIOD_US // 1000),
                "period": oci.CPU_PERIOD_US,
            },
            "pids": {"limit": 4096},
        },
        "seccomp": oci.seccomp_profile(),
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"],
        "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"],
    }
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", script],
            "env": [f"PATH={_PATH}", "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"],
            "cwd": "/",
            "capabilities": caps,
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
        },
        "root": {"path": str(root), "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }


async def run_in_box(
    lower: Path, upper: Path, work: Path, script: str, log: LogFn, source_url: str | None = None
) -> None:
    """Run ``script`` over ``lower`` with its changes going to ``upper``; stream its output to ``log``.

    ``source_url`` is the apt source the box may reach (default: the Debian
    mirror). Raises ``BoxFailed`` with the output's tail when the script fails
    or runs past the time limit. A cancelled caller kills the container and
    waits until it is gone, so no process keeps writing into a layer that is
    about to be removed.
    """
    from ._debian import mirror

    if crun_binary() is None:
        raise OSError("neither crun nor runc is installed")
    limits = BuildLimits.from_env()
    name = f"cove-build-{secrets.token_hex(6)}"
    bundle = STATE_ROOT / "bundles" / name
    cgroups_path = f"{CGROUP_PARENT}/{name}"
    (STATE_ROOT / "bundles").mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle.mkdir(mode=0o700)
    merged = bundle / "rootfs"
    merged.mkdir(mode=0o700)
    relay = IndexRelay(upstreams_for_url(source_url or mirror()))
    had_hosts = (lower / "etc" / "hosts").exists()
    try:
        await relay.start()
        hosts = bundle / "hosts"
        hosts.write_text(relay.hosts_file)
        hosts.chmod(0o644)
        config = box_config(merged, script, netns=relay.netns_path, hosts=hosts, cgroups_path=cgroups_path)
        (bundle / "config.json").write_text(json.dumps(config))

        @contextlib.contextmanager
        def overlay() -> Iterator[None]:
            mount_overlay(merged, [lower], upper=upper, work=work)
            try:
                yield
            finally:
                unmount(merged)

        finished = await run_bundle(bundle, name, log, limits.seconds, overlay)
    finally:
        await asyncio.shield(relay.close())
        cgroups.remove(cgroups.detect_layout(), cgroups_path)
        shutil.rmtree(bundle, ignore_errors=True)
    if not had_hosts:
        # The mount point of the bound hosts file, not something the script made.
        with contextlib.suppress(OSError):
            if (upper / "etc" / "hosts").stat().st_size == 0:
                (upper / "etc" / "hosts").unlink()
    if finished.timed_out:
        raise BoxFailed(finished.returncode, [*finished.tail, timed_out_line(limits)])
    if finished.returncode != 0:
        raise BoxFailed(finished.returncode, finished.tail)
