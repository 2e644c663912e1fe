"""Build containers: where uv (and every package build backend it starts) runs during an image build.

A package's build backend (``setup.py``, a PEP 517 hook) and anything a
package ships that runs at install time are code the tenant chose. They run
in a container made from the same pieces as the containers user code runs in
(:mod:`cove.runtime.oci`, ``_rootfs``, ``cgroups``):

* its root is an unprivileged block of host uids (:data:`BUILD_HOST_ID`, a
  block of its own above every container's), with no capabilities,
  ``noNewPrivileges``, the runtime's seccomp filter, masked ``/proc`` paths
  and a read-only root: the host's ``/usr`` and libraries bound read-only,
  ``/etc`` holding only Cove's own small files;
* cgroup limits on memory, cpu and processes, and a time limit per command;
* bind mounts at the host's own paths, so uv's command line is the same as
  on the host: read-only for the uv binary, the interpreter's installation
  and a ``file:`` index; writable only for the uv cache and the build's
  temporary environment folder;
* a network namespace whose only way out is :class:`._relay.IndexRelay`:
  the configured index (or PyPI when none is configured), nothing else.

Every build uses the same host uid, so the uv cache (owned by it) keeps its
hardlinks across builds: installing links files from the cache instead of
copying them, which is what makes a warm build fast. Files are written with
umask 022, so containers (other uids) read the finished environment.

Where build containers cannot run (the server is not root, or crun is
missing), :func:`unavailable` says why and the builder runs uv on the host,
saying loudly that build code is not isolated.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..runtime import FIRST_HOST_ID, SLOTS, HostLibsBase, cgroups, ensure_mount_point, mountns, oci
from ._relay import IndexRelay, Upstream

STATE_ROOT = Path("/run/cove/build")
ROOTS = STATE_ROOT / "roots"
CGROUP_PARENT = "/cove-build"
# Above the blocks handed to containers (see runtime._uids), so no container ever shares it.
BUILD_HOST_ID = FIRST_HOST_ID + SLOTS * oci.ID_RANGE
ISOLATION_VARIABLE = "COVE_BUILD_ISOLATION"  # "process" opts out of build containers
_TAIL_LINES = 60
_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables of the server's environment a build may see; everything else (tokens, keys) stays out.
_PASSED_PREFIXES = ("UV_",)
# The host's trust store: a site whose index sits behind its own certificate authority (a TLS-inspecting
# proxy, an internal reservoir with a private CA) names it with these, and uv reads them.
_TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_PASSED_NAMES = ("NO_COLOR", "SOURCE_DATE_EPOCH", "LANG", *_TRUST_VARIABLES)
_SYSTEM_TRUST = Path("/etc/ssl/certs")

LogFn = Callable[[str], Any]


@dataclasses.dataclass(frozen=True)
class BuildLimits:
    """What one build command may use; the defaults fit a large scientific package's build."""

    memory_mib: int = 4096
    cpu_millis: int = 1000 * (os.cpu_count() or 1)
    pids: int = 1024
    tmp_mib: int = 1024
    seconds: float = 1800.0

    @classmethod
    def from_env(cls) -> BuildLimits:
        """Defaults, overridden by ``COVE_BUILD_MEMORY_MIB`` and ``COVE_BUILD_TIMEOUT`` (seconds)."""
        limits = cls()
        memory = os.environ.get("COVE_BUILD_MEMORY_MIB")
        timeout = os.environ.get("COVE_BUILD_TIMEOUT")
        if memory:
            limits = dataclasses.replace(limits, memory_mib=int(memory))
        if timeout:
            limits = dataclasses.replace(limits, seconds=float(timeout))
        return limits


@dataclasses.dataclass(frozen=True)
class Finished:
    """How a command in a build container ended: its exit code, its output and whether time ran out."""

    returncode: int
    lines: list[str]
    tail: list[str]
    timed_out: bool = False


def crun_binary() -> str | None:
    """The OCI runtime for build containers (crun preferred, runc accepted), or None."""
    return shutil.which("crun") or shutil.which("runc")


def unavailable() -> str | None:
    """Why builds cannot run in build containers here, or None when they can."""
    if os.environ.get(ISOLATION_VARIABLE, "").strip().lower() == "process":
        return f"the operator set {ISOLATION_VARIABLE}=process"
    if os.geteuid() != 0:
        return "the server does not run as root"
    if crun_binary() is None:
        return "neither crun nor runc is installed"
    if shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "the 'ip' command is missing (install iproute2)"
    if cgroups.detect_layout() is cgroups.Layout.NONE:
        return "no cgroup filesystem is mounted"
    return None


def container_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of ``env`` a build container gets, plus the few variables every build needs."""
    passed = {k: v for k, v in env.items() if k.startswith(_PASSED_PREFIXES) or k in _PASSED_NAMES}
    return {**passed, "PATH": _PATH, "HOME": str(oci.TMP), "TMPDIR": str(oci.TMP)}


def trust_store(env: Mapping[str, str]) -> list[Path]:
    """The host's certificate files and folders a build needs to verify its index, read-only.

    Those named by ``SSL_CERT_FILE``/``SSL_CERT_DIR`` and the system's
    ``/etc/ssl/certs``; certificates are public, so nothing secret is shown
    to build code. Links in the folder lead into ``/usr``, which every build
    sees already.
    """
    named = [Path(env[name]) for name in _TRUST_VARIABLES if env.get(name)]
    return [path for path in dict.fromkeys([*named, _SYSTEM_TRUST]) if path.is_absolute() and path.exists()]


def give_to_builds(path: Path) -> None:
    """Hand ``path`` (and, when it changed hands, everything below it) to the build uid.

    The uv cache is shared by every build, so it belongs to the one uid all
    builds run as; a cache an older, unisolated build left to root changes
    hands once.
    """
    path.mkdir(parents=True, exist_ok=True)
    stat = path.stat()
    if stat.st_uid == BUILD_HOST_ID and all(
        child.lstat().st_uid == BUILD_HOST_ID for child in path.iterdir() if not child.is_symlink()
    ):
        return
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), BUILD_HOST_ID, BUILD_HOST_ID)
    os.chown(path, BUILD_HOST_ID, BUILD_HOST_ID)


class CrunRun:
    """One ``crun run`` of a prepared bundle, driven from a thread of its own; lines reach the loop.

    The thread enters a private mount namespace first (crun then accepts
    hosts with the cgroup "hybrid" layout, and whatever ``setup`` mounts never
    appears on the host); the namespace ends with the thread.
    """

    def __init__(
        self,
        bundle: Path,
        name: str,
        loop: asyncio.AbstractEventLoop,
        setup: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self.bundle = bundle
        self.name = name
        self.loop = loop
        self.setup = setup
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.done: asyncio.Future[int] = loop.create_future()
        self._init_pid: int | None = None

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

    def thread_body(self) -> None:
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
        mountns.unshare_mounts()
        if cgroups.detect_layout() is cgroups.Layout.HYBRID:
            mountns.lazy_unmount(str(cgroups.UNIFIED))
        with self.setup() if self.setup is not None else contextlib.nullcontext():
            return self._crun(binary)

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
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if self._init_pid is None:
                    with contextlib.suppress(OSError, ValueError):
                        self._init_pid = int(pid_file.read_text())
                self._send(raw.decode(errors="replace").rstrip("\r\n"))
            code = proc.wait()
        subprocess.run([binary, "--root", str(state), "delete", "--force", self.name], capture_output=True, check=False)
        return code

    def kill(self) -> None:
        """Kill everything in the container (its pid namespace's init)."""
        pid = self._init_pid
        if pid is None:
            with contextlib.suppress(OSError, ValueError):
                pid = int((self.bundle / "pid").read_text())
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def run_bundle(
    bundle: Path,
    name: str,
    log: LogFn | None,
    seconds: float,
    setup: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
) -> Finished:
    """Run the container of ``bundle``, streaming its output to ``log``; kill it after ``seconds``.

    A cancelled caller kills the container and waits until it is gone, so no
    process keeps writing into a folder that is about to be removed.
    """
    run = CrunRun(bundle, name, asyncio.get_running_loop(), setup)
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    thread = threading.Thread(target=run.thread_body, name=name, daemon=True)
    thread.start()

    async def drain() -> int:
        while (line := await run.lines.get()) is not None:
            lines.append(line)
            tail.append(line)
            if log is not None:
                await log(line)
        return await run.done

    try:
        code = await asyncio.wait_for(drain(), timeout=seconds)
    except TimeoutError:
        run.kill()
        await asyncio.shield(asyncio.to_thread(thread.join))
        return Finished(-signal.SIGKILL, lines, list(tail), timed_out=True)
    except BaseException:
        run.kill()
        await asyncio.shield(asyncio.to_thread(thread.join))
        raise
    return Finished(code, lines, list(tail))


def _swap_limit(layout: cgroups.Layout) -> bool:
    return layout is cgroups.Layout.V2 or (cgroups.ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()


class BuildContainer:
    """The containers one build's commands run in: a root, mounts, limits and the index relay.

    ``reads`` and ``writes`` are host paths bound at the same paths inside
    (read-only and writable); ``upstreams`` are what the network may reach
    (none: no network at all). Use as an async context manager; each
    :meth:`run` is one container.
    """

    def __init__(
        self,
        reads: Sequence[Path],
        writes: Sequence[Path],
        upstreams: Sequence[Upstream],
        limits: BuildLimits | None = None,
    ) -> None:
        self.reads = [*(Path(p) for p in reads), *trust_store(os.environ)]
        self.writes = [Path(p) for p in writes]
        self.limits = limits or BuildLimits.from_env()
        self.relay = IndexRelay(upstreams) if upstreams else None
        self.name = f"cove-build-{secrets.token_hex(6)}"
        self.root = ROOTS / self.name
        self.layout = cgroups.detect_layout()
        self._mounts: list[oci.Mount] = []
        self._runs = 0

    async def __aenter__(self) -> BuildContainer:
        try:
            await asyncio.to_thread(self._prepare_root)
            if self.relay is not None:
                await self.relay.start()
                (self.root / "etc" / "hosts").write_text(self.relay.hosts_file)
        except BaseException:
            await self._teardown()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._teardown()

    async def _teardown(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        await asyncio.to_thread(shutil.rmtree, self.root, True)

    def _prepare_root(self) -> None:
        """A skeleton root of this build's own: the host's system folders plus mount points at host paths."""
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        ROOTS.mkdir(mode=0o711, exist_ok=True)
        ROOTS.chmod(0o711)
        base = HostLibsBase(self.root)
        base.prepare()
        mounts = base.mounts()
        for path, writable in [*((p, False) for p in self.reads), *((p, True) for p in self.writes)]:
            if not writable and base.covers(path):
                continue
            ensure_mount_point(self.root, path, path.is_dir())
            mounts.append(oci.Mount(path, path, writable=writable))
        self._mounts = mounts

    def config(self, argv: Sequence[str], env: Mapping[str, str], cgroups_path: str) -> dict[str, Any]:
        """The OCI config of one command: the runtime's isolated container, with this build's mounts."""
        bundle = oci.Bundle(
            container_id=self.name,
            rootfs=self.root,
            args=list(argv),
            env=container_env(env),
            mounts=self._mounts,
            limits=oci.Limits(
                memory_mib=self.limits.memory_mib,
                cpu_millis=self.limits.cpu_millis,
                pids=self.limits.pids,
                tmp_mib=self.limits.tmp_mib,
            ),
            host_id=BUILD_HOST_ID,
            cgroups_path=cgroups_path,
            cwd=oci.TMP,
            network_ns=self.relay.netns_path if self.relay is not None else None,
            umask=0o022,
            swap_limit=_swap_limit(self.layout),
        )
        config = oci.build_config(bundle)
        config["hostname"] = "cove-build"
        return config

    async def run(self, argv: Sequence[str], env: Mapping[str, str], log: LogFn | None) -> Finished:
        """Run ``argv`` in a fresh container of this build; its output goes to ``log`` line by line."""
        self._runs += 1
        name = f"{self.name}-{self._runs}"
        bundle = STATE_ROOT / "bundles" / name
        cgroups_path = f"{CGROUP_PARENT}/{name}"
        (STATE_ROOT / "bundles").mkdir(mode=0o700, parents=True, exist_ok=True)
        bundle.mkdir(mode=0o700)
        try:
            (bundle / "config.json").write_text(json.dumps(self.config(argv, env, cgroups_path)))
            return await run_bundle(bundle, name, log, self.limits.seconds)
        finally:
            cgroups.remove(self.layout, cgroups_path)
            shutil.rmtree(bundle, ignore_errors=True)


def describe(limits: BuildLimits) -> str:
    """One line for the build log: what the build container may use."""
    return (
        f"build container: unprivileged uid {BUILD_HOST_ID}, no capabilities, seccomp, "
        f"{limits.memory_mib} MiB, {limits.cpu_millis / 1000:g} cpu, {limits.pids} processes, "
        f"{limits.seconds:g} s per step"
    )


def timed_out_line(limits: BuildLimits) -> str:
    return f"error: the build step ran past its time limit of {limits.seconds:g} s and was stopped"
