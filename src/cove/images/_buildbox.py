"""Running a shell script as root in a build container over a read-only base.

The script (apt-get, the image's commands) sees a writable root: an overlay
whose lower folder is the Debian base and whose upper folder is the new
layer, so everything it changes lands in the layer and the base stays as it
was. It shares the host's network namespace, because apt needs the Debian
mirror (or the reservoir's); it gets its own mount, pid, ipc, uts and user
namespaces. The user namespace maps ids one to one (container root is host
root as far as file ownership goes, so the layer's files belong to the same
ids as the base's) while its capabilities reach only what that namespace
owns: no host devices, no network configuration, no kernel modules.

All of it happens in a thread of its own: the thread enters a private mount
namespace (so the overlay never appears on the host, and crun accepts hosts
with the cgroup "hybrid" layout), mounts, runs crun, and unmounts. The
namespace is freed with the thread, so a crash cannot leave the mount behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runtime import _cgroups, _mountns
from ..runtime._overlay import mount_overlay, unmount
from ._uv import LogFn

STATE_ROOT = Path("/run/cove/build")
_TAIL_LINES = 40
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


def crun_binary() -> str | None:
    """The OCI runtime for build containers (crun preferred, runc accepted), or None."""
    return shutil.which("crun") or shutil.which("runc")


def box_config(root: Path, script: str, hostname: str = "cove-build") -> dict[str, Any]:
    """The OCI config of one build container (see the module docstring for what it may do)."""
    caps = {key: list(_CAPABILITIES) for key in ("bounding", "effective", "permitted")}
    tmpfs = ["nosuid", "nodev", "mode=1777", "size=1g"]
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
    resolv = Path("/etc/resolv.conf")
    if resolv.exists():
        # The host's resolver, so apt finds the mirror by name; read-only and not part of the layer.
        mounts.append(
            {"destination": str(resolv), "type": "bind", "source": str(resolv.resolve()), "options": ["rbind", "ro"]}
        )
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
        "linux": {
            "uidMappings": _ID_MAP,
            "gidMappings": _ID_MAP,
            # No "network" entry: the host's network namespace, for the package mirror.
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "user")],
            "resources": {"pids": {"limit": 4096}},
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"],
        },
    }


class _Box:
    """One build container's run, driven from its own thread; lines go back to the event loop."""

    def __init__(self, lower: Path, upper: Path, work: Path, script: str, loop: asyncio.AbstractEventLoop) -> None:
        self.lower = lower
        self.upper = upper
        self.work = work
        self.script = script
        self.loop = loop
        self.name = f"cove-build-{secrets.token_hex(6)}"
        self.bundle = STATE_ROOT / "bundles" / self.name
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.init_pid: int | None = None
        self.done: asyncio.Future[int] = loop.create_future()

    def _send(self, line: str | None) -> None:
        self.loop.call_soon_threadsafe(self.lines.put_nowait, line)

    def _finish(self, result: int | BaseException) -> None:
        def settle() -> None:
            if self.done.done():
                return
            if isinstance(result, BaseException):
                self.done.set_exception(result)
            else:
                self.done.set_result(result)

        self.loop.call_soon_threadsafe(settle)

    def run(self) -> None:
        """Thread body: private mount namespace, overlay, ``crun run``, then undo it all."""
        try:
            self._finish(self._run())
        except BaseException as exc:  # reported to the awaiting coroutine, never lost in the thread
            self._finish(exc)
        finally:
            self._send(None)

    def _run(self) -> int:
        binary = crun_binary()
        if binary is None:
            raise OSError("neither crun nor runc is installed")
        _mountns.unshare_mounts()
        if _cgroups.detect_layout() is _cgroups.Layout.HYBRID:
            _mountns.lazy_unmount(str(_cgroups.UNIFIED))
        merged = self.bundle / "rootfs"
        merged.mkdir(parents=True, mode=0o700)
        try:
            mount_overlay(merged, [self.lower], upper=self.upper, work=self.work)
            try:
                (self.bundle / "config.json").write_text(json.dumps(box_config(merged, self.script)))
                return self._crun(binary)
            finally:
                unmount(merged)
        finally:
            shutil.rmtree(self.bundle, ignore_errors=True)

    def _crun(self, binary: str) -> int:
        state = STATE_ROOT / "state"
        pid_file = self.bundle / "pid"
        argv = [binary, "--root", str(state), "run", "--bundle", str(self.bundle), "--pid-file", str(pid_file)]
        with subprocess.Popen(
            [*argv, self.name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if self.init_pid is None:
                    with contextlib.suppress(OSError, ValueError):
                        self.init_pid = int(pid_file.read_text())
                self._send(raw.decode(errors="replace").rstrip("\r\n"))
            code = proc.wait()
        subprocess.run([binary, "--root", str(state), "delete", "--force", self.name], capture_output=True, check=False)
        return code

    def kill(self) -> None:
        """Kill everything in the container (its pid namespace's init), e.g. when the build is cancelled."""
        pid = self.init_pid
        if pid is None:
            with contextlib.suppress(OSError, ValueError):
                pid = int((self.bundle / "pid").read_text())
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def run_in_box(lower: Path, upper: Path, work: Path, script: str, log: LogFn) -> None:
    """Run ``script`` over ``lower`` with its changes going to ``upper``; stream its output to ``log``.

    Raises ``BoxFailed`` with the output's tail when the script fails. A
    cancelled caller kills the container and waits until it is gone, so no
    process keeps writing into a layer that is about to be removed.
    """
    (STATE_ROOT / "bundles").mkdir(parents=True, exist_ok=True, mode=0o700)
    box = _Box(lower, upper, work, script, asyncio.get_running_loop())
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    thread = threading.Thread(target=box.run, name=box.name, daemon=True)
    thread.start()
    try:
        while (line := await box.lines.get()) is not None:
            tail.append(line)
            await log(line)
        code = await box.done
    except BaseException:
        box.kill()
        await asyncio.shield(asyncio.to_thread(thread.join))
        raise
    if code != 0:
        raise BoxFailed(code, tail)
