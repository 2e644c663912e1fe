"""The ``crun`` engine: each container is an OCI container run by crun (or runc).

Start path, all in the worker's event-loop thread: prepare the read-only root
(cached skeleton + mount points), write ``config.json``, then ``posix_spawn``
``crun run`` with the listening socket as fd 3 and the readiness pipe as fd 4
(``--preserve-fds 2``). crun stays our child for the container's life and
exits with its status, which gives an exact exit code without making the
worker a subreaper. crun forwards SIGTERM to the container; SIGKILL goes to
the container's init directly (its pid comes from ``--pid-file``): killing a
pid namespace's init kills everything in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from .._secretfd import SECRET_FD, SECRET_FD_ENV, secret_memfd
from .._volumes import CONTAINER_VOLUME_GID, VOLUME_GID
from . import _cgroups, _mountns, _oci
from ._base import LaunchSpec, StartError
from ._layers import LayeredBase
from ._process import _reader, _stage, build_env
from ._rootfs import DebootstrapBase, HostLibsBase, ensure_mount_point
from ._uids import UidAllocator, UidLease

log = logging.getLogger("cove.runtime")

DEFAULT_ROOT = Path("/run/cove")
CGROUP_PARENT = "/cove"


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


class Base(Protocol):
    """A root filesystem base (see :mod:`._rootfs`)."""

    name: str
    root: Path

    def prepare(self) -> None: ...

    def mounts(self) -> list[_oci.Mount]: ...

    def covers(self, python: Path) -> bool: ...


def interpreter_prefix(python: Path) -> Path:
    """The installation folder of the interpreter a venv's ``bin/python`` leads to.

    ``.../bin/python3.11`` → ``...``; mounted read-only at the same path so the
    venv's absolute symlink resolves inside the container.
    """
    return python.resolve().parent.parent


@dataclasses.dataclass
class _Prepared:
    bundle_dir: Path
    lease: UidLease
    argv: list[str]


class CrunHandle:
    """A container started by :class:`CrunRuntime` (same contract as the process engine's handle)."""

    def __init__(
        self,
        runtime: CrunRuntime,
        container_id: str,
        crun_pid: int,
        prepared: _Prepared,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        ready: asyncio.StreamReader,
        spawned_at: float,
        timings: dict[str, float],
        memory_mib: int,
    ) -> None:
        self._runtime = runtime
        self._id = container_id
        self._crun_pid = crun_pid
        self._prepared = prepared
        self._stdout = stdout
        self._stderr = stderr
        self._ready_reader = ready
        self._ready: bool | None = None
        self._spawned_at = spawned_at
        self._spawned_wall = time.time() - (time.perf_counter() - spawned_at)
        self._timings = timings
        self._memory_mib = memory_mib
        self._returncode: int | None = None
        self._exit_reason: str | None = None
        self._killed = False
        self._init_pidfd: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_task: asyncio.Task[None] | None = None
        self._watch_exit()

    @property
    def pid(self) -> int:
        """crun's pid: the host process this worker started and waits for."""
        return self._crun_pid

    @property
    def container_id(self) -> str:
        return self._id

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def exit_reason(self) -> str | None:
        """Why it exited when the code alone does not say (``OOMKilled: ...``)."""
        return self._exit_reason

    @property
    def stdout(self) -> asyncio.StreamReader:
        return self._stdout

    @property
    def stderr(self) -> asyncio.StreamReader:
        return self._stderr

    @property
    def timings(self) -> Mapping[str, float]:
        return self._timings

    @property
    def bundle_dir(self) -> Path:
        return self._prepared.bundle_dir

    async def wait_ready(self) -> bool:
        if self._ready is None:
            line = await self._ready_reader.readline()
            self._ready = line == b"ready\n"
            if self._ready:
                self._timings["ready_ms"] = _ms(self._spawned_at)
                self._note_runtime_start()
        return self._ready

    def _note_runtime_start(self) -> None:
        """``runtime_start_ms``: spawn until crun had built the container (it writes the pid file then,
        just before the runner's exec); the rest of ``ready_ms`` is Python and the user's imports."""
        with contextlib.suppress(OSError):
            written = os.stat(self._prepared.bundle_dir / "pid").st_mtime_ns / 1e9
            self._timings["runtime_start_ms"] = round((written - self._spawned_wall) * 1000, 3)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self._returncode is not None:
            return
        self._killed = True
        if not self._signal_init(signal.SIGKILL):
            # Too early for a pid file: crun itself still sets the container up. Killing crun
            # leaves a half-made container that the exit path deletes with ``crun delete -f``.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._crun_pid, signal.SIGKILL)

    async def stop(self, grace: float) -> int:
        if self._exited.done():
            return self._exited.result()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._crun_pid, signal.SIGTERM)  # crun forwards it to the container's init
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), timeout=max(grace, 0.0))
        except TimeoutError:
            log.warning("container did not stop in %.1fs; killing it", grace, extra={"container_id": self._id})
            self.kill()
            return await asyncio.shield(self._exited)

    def _signal_init(self, sig: int) -> bool:
        """Signal the container's init through a pidfd (no pid-reuse race); False if not known yet."""
        if self._init_pidfd is None:
            try:
                pid = int((self._prepared.bundle_dir / "pid").read_text())
                self._init_pidfd = os.pidfd_open(pid)
            except (OSError, ValueError):
                return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._init_pidfd, sig)
        return True

    def _watch_exit(self) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(self._crun_pid)

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._exit_task = loop.create_task(self._on_exit())

        loop.add_reader(pidfd, readable)

    async def _on_exit(self) -> None:
        try:
            _, status = os.waitpid(self._crun_pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        if code > 128:  # crun reports a container killed by signal N as 128 + N, like a shell
            code = -(code - 128)
        if code == -signal.SIGKILL and not self._killed:
            # Nothing inside a pid namespace can SIGKILL its init; from outside only we (not this
            # time), an administrator, or the kernel's OOM killer can. The memory limit is the
            # only one of these that is part of the container's life.
            self._exit_reason = f"OOMKilled: the container exceeded its memory limit of {self._memory_mib} MiB"
        if self._init_pidfd is not None:
            os.close(self._init_pidfd)
            self._init_pidfd = None
        try:
            await self._runtime._cleanup(self._id, self._prepared)
        except Exception:
            log.exception("cleaning up a container failed", extra={"container_id": self._id})
        self._returncode = code
        if not self._exited.done():
            self._exited.set_result(code)


class CrunRuntime:
    """Runs each container with an OCI runtime (``crun``; ``runc`` accepted with the same spec)."""

    isolated = True

    def __init__(
        self,
        binary: str = "crun",
        *,
        root: Path | None = None,
        base: Base | None = None,
        tmp_mib: int = 64,
        pids_limit: int = 1024,
        uids: UidAllocator | None = None,
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise StartError(f"{binary} is not installed")
        self.binary = path
        self.name = Path(binary).name
        self.root = (root or DEFAULT_ROOT / f"{self.name}-{os.getpid()}").absolute()
        self.state_dir = self.root / "state"
        self.bundles = self.root / "bundles"
        # The root must be reachable by the container's unprivileged uid, so it lives outside the
        # worker's private (0700) folder: a world-traversable path under /run, shared by workers.
        self.base: Base = base or HostLibsBase(DEFAULT_ROOT / "rootfs" / "host-libs")
        self._bases: dict[Path, Base] = {}
        self.tmp_mib = tmp_mib
        self.pids_limit = pids_limit
        self.uids = uids or UidAllocator()
        self.layout = _cgroups.detect_layout()
        if self.layout is _cgroups.Layout.NONE:
            raise StartError("no cgroup filesystem is mounted; containers cannot be limited")
        self.swap_limit = (
            self.layout is _cgroups.Layout.V2 or (_cgroups.ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()
        )
        DEFAULT_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
        for folder in (self.root, self.state_dir, self.bundles):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- host view -------------------------------------------------------------------------

    def enter_host_view(self) -> None:
        """Make this thread's mount view one crun accepts (see :mod:`._mountns`); cheap after the first call."""
        if self.layout is _cgroups.Layout.HYBRID and self.name == "crun":
            _mountns.hide_in_private_namespace(str(_cgroups.UNIFIED))

    def command(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_dir), *args]

    # --- start -----------------------------------------------------------------------------

    def base_for(self, spec: LaunchSpec) -> Base:
        """The spec's own root (a Debian base with system packages) or the engine's default."""
        if spec.rootfs is None:
            return self.base
        if spec.layers:
            return LayeredBase(DEFAULT_ROOT / "rootfs" / "layered", spec.rootfs, spec.layers)
        base = self._bases.get(spec.rootfs)
        if base is None:
            base = self._bases[spec.rootfs] = DebootstrapBase(spec.rootfs)
        return base

    def _mounts(self, spec: LaunchSpec, base: Base) -> tuple[list[_oci.Mount], str]:
        """The container's bind mounts, and the interpreter path to run inside it."""
        mounts = base.mounts()
        if not base.covers(spec.python.resolve()):
            prefix = interpreter_prefix(spec.python)
            ensure_mount_point(base.root, prefix)
            mounts.append(_oci.Mount(prefix, prefix))
        if spec.venv is not None:
            mounts.append(_oci.Mount(spec.venv, _oci.VENV))
            try:
                python = str(_oci.VENV / spec.python.relative_to(spec.venv))
            except ValueError:
                python = str(spec.python.resolve())
        else:
            python = str(spec.python.resolve())
        cove_pkg = (spec.pylib_dir / "cove").resolve()
        mounts += [
            _oci.Mount(spec.code_dir, _oci.CODE),
            _oci.Mount(cove_pkg, _oci.PYLIB / "cove"),
            _oci.Mount(spec.work_dir, _oci.WORK, writable=True),
        ]
        for source, inside, _name in spec.volumes:
            ensure_mount_point(base.root, Path(inside))
            mounts.append(_oci.Mount(source, Path(inside), writable=True))
        return mounts, python

    def _env(self, spec: LaunchSpec) -> dict[str, str]:
        inside = dataclasses.replace(
            spec,
            venv=_oci.VENV if spec.venv is not None else None,
            code_dir=_oci.CODE,
            work_dir=_oci.WORK,
            pylib_dir=_oci.PYLIB,
            volumes=tuple((Path(path), path, name) for _source, path, name in spec.volumes),
            secret_env={},
        )
        env = build_env(inside)
        if spec.secret_env:
            env[SECRET_FD_ENV] = str(SECRET_FD)
        env["TMPDIR"] = str(_oci.TMP)
        return env

    def _prepare(self, spec: LaunchSpec, timings: dict[str, float]) -> _Prepared:
        mark = time.perf_counter()
        base = self.base_for(spec)
        base.prepare()
        lease = self.uids.acquire()
        try:
            spec.work_dir.mkdir(parents=True, exist_ok=True)
            os.chown(spec.work_dir, lease.host_id, lease.host_id)
            mounts, python = self._mounts(spec, base)
            timings["mount_ms"] = _ms(mark)
            mark = time.perf_counter()
            bundle = _oci.Bundle(
                container_id=spec.container_id,
                rootfs=base.root,
                args=[python, "-P", "-m", "cove.runner"],
                env=self._env(spec),
                mounts=mounts,
                limits=_oci.Limits(
                    memory_mib=spec.memory_mib,
                    cpu_millis=spec.cpu_millis,
                    pids=spec.pids_limit or self.pids_limit,
                    tmp_mib=self.tmp_mib,
                ),
                host_id=lease.host_id,
                cgroups_path=f"{CGROUP_PARENT}/{spec.container_id}",
                swap_limit=self.swap_limit,
                # Volumes are shared through a group, not an owner (see cove._volumes).
                extra_gids=((CONTAINER_VOLUME_GID, VOLUME_GID),) if spec.volumes else (),
                umask=0o002 if spec.volumes else None,
            )
            bundle_dir = self.bundles / spec.container_id
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(bundle_dir)
            bundle_dir.mkdir(mode=0o700, parents=True)
            (bundle_dir / "config.json").write_text(json.dumps(_oci.build_config(bundle)))
            timings["spec_ms"] = _ms(mark)
        except BaseException:
            lease.release()
            raise
        argv = self.command(
            "run",
            "--bundle",
            str(bundle_dir),
            "--pid-file",
            str(bundle_dir / "pid"),
            "--preserve-fds",
            "3" if spec.secret_env else "2",
        )
        argv.append(spec.container_id)
        return _Prepared(bundle_dir=bundle_dir, lease=lease, argv=argv)

    async def start(self, spec: LaunchSpec, listener: socket.socket) -> CrunHandle:
        if spec.rootfs is None and not spec.python.exists():
            # (With its own root the venv's interpreter link points into that root, not at the host.)
            raise StartError(f"the image's interpreter {spec.python} does not exist")
        timings: dict[str, float] = {}
        self.enter_host_view()
        try:
            prepared = self._prepare(spec, timings)
        except OSError as exc:
            raise StartError(f"cannot prepare the container: {exc}") from exc
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        staged: list[int] = []
        secrets_fd: int | None = None
        # crun's own environment: only what it needs, plus the id so a restarted worker recognises it.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "COVE_CONTAINER_ID": spec.container_id}
        try:
            passed = [out_w, err_w, listener.fileno(), ready_w]
            if spec.secret_env:
                secrets_fd = secret_memfd(spec.secret_env)
                passed.append(secrets_fd)
            staged = [_stage(fd) for fd in passed]
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                *((os.POSIX_SPAWN_DUP2, fd, target) for fd, target in zip(staged, range(1, 6), strict=False)),
            ]
            started = time.perf_counter()
            try:
                pid = os.posix_spawn(
                    prepared.argv[0],
                    prepared.argv,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
                    setsigmask=(),
                )
            except OSError as exc:
                prepared.lease.release()
                raise StartError(f"cannot start {prepared.argv[0]}: {exc.strerror}") from exc
            timings["spawn_ms"] = _ms(started)
        except BaseException:
            for fd in (out_r, err_r, ready_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, ready_w, *staged, *([secrets_fd] if secrets_fd is not None else [])):
                os.close(fd)
        handle = CrunHandle(
            self,
            spec.container_id,
            pid,
            prepared,
            await _reader(out_r),
            await _reader(err_r),
            await _reader(ready_r),
            started,
            timings,
            spec.memory_mib,
        )
        log.info("container started", extra={"container_id": spec.container_id, "runtime": self.name, "crun_pid": pid})
        return handle

    # --- after the exit ----------------------------------------------------------------------

    async def _cleanup(self, container_id: str, prepared: _Prepared) -> None:
        """Remove whatever crun left (it normally deletes its own state and cgroup on exit)."""
        try:
            if (self.state_dir / container_id).exists():
                await self._run("delete", "--force", container_id)
            _cgroups.remove(self.layout, f"{CGROUP_PARENT}/{container_id}")
            shutil.rmtree(prepared.bundle_dir, ignore_errors=True)
        finally:
            prepared.lease.release()

    async def _run(self, *args: str) -> int:
        """Run a crun subcommand from this (the loop's) thread, which has the right mount view."""
        self.enter_host_view()
        proc = await asyncio.create_subprocess_exec(
            *self.command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode:
            log.warning("%s %s failed", self.name, args[0], extra={"error": err.decode(errors="replace").strip()[:500]})
        return proc.returncode or 0

    def reap_stale(self) -> int:
        """Delete containers a previous run of this worker left behind; return how many."""
        self.enter_host_view()
        count = 0
        with contextlib.suppress(OSError):
            for entry in self.state_dir.iterdir():
                subprocess.run(self.command("delete", "--force", entry.name), capture_output=True, check=False)
                _cgroups.remove(self.layout, f"{CGROUP_PARENT}/{entry.name}")
                count += 1
        with contextlib.suppress(OSError):
            for entry in self.bundles.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
        if count:
            log.warning("deleted containers left by a previous run", extra={"count": count, "runtime": self.name})
        return count
