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
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cove._host.secretfd import SECRET_FD, SECRET_FD_ENV, secret_memfd
from cove._host.volumes import CONTAINER_VOLUME_GID, VOLUME_GID

from . import _network, cgroups, mountns, oci
from ._base import LaunchSpec, StartError
from ._layers import LayeredBase
from ._process import _reader, _stage, build_env
from ._pylib import CompiledPylib
from ._rootfs import DebootstrapBase, HostLibsBase, ensure_mount_point
from ._uids import UidAllocator, UidLease

log = logging.getLogger("cove.runtime")

DEFAULT_ROOT = Path("/run/cove")
CGROUP_PARENT = "/cove"
# The package the runner comes from; its byte-compiled copy is made ahead when the engine starts.
COVE_PACKAGE = Path(__file__).resolve().parent.parent


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


class Base(Protocol):
    """A root filesystem base (see :mod:`._rootfs`)."""

    name: str
    root: Path

    def prepare(self) -> None: ...

    def mounts(self) -> list[oci.Mount]: ...

    def covers(self, python: Path) -> bool: ...


def interpreter_prefix(python: Path) -> Path:
    """The installation folder of the interpreter a venv's ``bin/python`` leads to.

    ``.../bin/python3.11`` → ``...``; mounted read-only at the same path so the
    venv's absolute symlink resolves inside the container.
    """
    return python.resolve().parent.parent


def refuse_host_root(mount: oci.Mount) -> None:
    """Never bind the host's ``/`` into a container, whatever path or symlink led to it.

    Each source is confined where it is chosen (images, environments,
    volumes); this is the last check before crun sees the mounts.
    """
    if os.path.realpath(mount.source) == "/":
        raise StartError(f"refusing to mount {mount.source} at {mount.destination}: it leads to the host's /")


@dataclasses.dataclass
class _Prepared:
    container_id: str
    bundle_dir: Path
    lease: UidLease
    argv: list[str]
    network: _network.NetLease | None = None


@dataclasses.dataclass
class _Spawned:
    pid: int
    readers: tuple[asyncio.StreamReader, asyncio.StreamReader, asyncio.StreamReader]  # stdout, stderr, ready
    started: float


_SHIM = Path(__file__).with_name("_shim.py")
_SHIM_STATUS_FD = 6  # above the container's descriptors (0-5), which the shim hands to crun create


async def _drain(reader: asyncio.StreamReader, limit: int = 4096) -> str:
    with contextlib.suppress(Exception):
        return (await asyncio.wait_for(reader.read(limit), timeout=2)).decode(errors="replace")
    return ""


async def wait_child(pid: int) -> int:
    """Wait (without blocking the loop or a thread) for our child ``pid`` to exit; its exit code."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    if pidfd is not None:
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await done
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)


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
        *,
        created_ahead: bool = False,
    ) -> None:
        self._runtime = runtime
        self._created_ahead = created_ahead
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
                if not self._created_ahead:
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


class CreatedContainer:
    """A container made ahead by :meth:`CrunRuntime.create`: started once with :meth:`start`, or discarded."""

    def __init__(
        self,
        runtime: CrunRuntime,
        spec: LaunchSpec,
        prepared: _Prepared,
        spawned: _Spawned,
        late_fd: int,
        timings: dict[str, float],
    ) -> None:
        self._runtime = runtime
        self.spec = spec
        self._prepared = prepared
        self._spawned = spawned
        self._late_fd: int | None = late_fd
        self.timings = timings
        self.created_at = time.monotonic()
        self._starter: asyncio.Future[None] | None = None

    @property
    def id(self) -> str:
        """The id crun knows it by (chosen by whoever created it, not the id it will serve under)."""
        return self.spec.container_id

    @property
    def usable(self) -> bool:
        """Not started or discarded yet, and its parent shim (so the container) is still there."""
        if self._late_fd is None:
            return False
        try:
            pid, _status = os.waitpid(self._spawned.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    async def start(self, serve_as: str, secret_env: Mapping[str, str] | None = None) -> CrunHandle:
        """Run the container's process (``crun start``) as container ``serve_as``.

        Returns at once: the listening socket already exists, so requests queue while the runner boots.
        """
        if self._late_fd is None:
            raise StartError(f"container {self.id} was already started or discarded")
        late_fd, self._late_fd = self._late_fd, None
        try:
            payload = json.dumps({"COVE_CONTAINER_ID": serve_as, **(secret_env or {})}).encode()
            os.pwrite(late_fd, payload, 0)
            import fcntl

            fcntl.fcntl(late_fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)
        finally:
            os.close(late_fd)
        runtime = self._runtime
        runtime.enter_host_view()
        timings: dict[str, float] = {"created_ahead": 1.0}
        started = time.perf_counter()
        argv = runtime.command("start", self.id)
        err_r, err_w = os.pipe()
        try:
            starter = os.posix_spawn(
                argv[0],
                argv,
                {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
            )
        except OSError as exc:
            os.close(err_r)
            await self.discard()
            raise StartError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        finally:
            os.close(err_w)
        timings["spawn_ms"] = _ms(started)
        stdout, stderr, ready = self._spawned.readers
        handle = CrunHandle(
            runtime,
            self.id,
            self._spawned.pid,
            self._prepared,
            stdout,
            stderr,
            ready,
            started,
            timings,
            self.spec.memory_mib,
            created_ahead=True,
        )
        self._starter = asyncio.ensure_future(self._watch_starter(starter, err_r, handle))
        log.info("container started", extra={"container_id": serve_as, "runtime": runtime.name, "crun_id": self.id})
        return handle

    async def _watch_starter(self, pid: int, err_r: int, handle: CrunHandle) -> None:
        """``crun start`` failing leaves a container that never runs: kill it, so its exit is reported."""
        code = await wait_child(pid)
        with os.fdopen(err_r, "rb") as err:
            message = err.read(2000).decode(errors="replace").strip() if code else ""
        if code:
            log.warning("%s start failed", self._runtime.name, extra={"container_id": self.id, "error": message})
            handle.kill()

    async def discard(self) -> None:
        """Delete the container unstarted (crun delete, cgroup, bundle, uid lease); idempotent."""
        if self._late_fd is None:
            return
        os.close(self._late_fd)
        self._late_fd = None
        await self._runtime._run("delete", "--force", self.id)
        await wait_child(self._spawned.pid)
        await self._runtime._cleanup(self.id, self._prepared)


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
        # Per-container files the container must read (its /etc/hosts): world-traversable, like the roots.
        self.net_files = DEFAULT_ROOT / "net" / self.root.name
        self.bundles = self.root / "bundles"
        # The root must be reachable by the container's unprivileged uid, so it lives outside the
        # worker's private (0700) folder: a world-traversable path under /run, shared by workers.
        self.base: Base = base or HostLibsBase(DEFAULT_ROOT / "rootfs" / "host-libs")
        self._bases: dict[Path, Base] = {}
        self.tmp_mib = tmp_mib
        self.pids_limit = pids_limit
        self.uids = uids or UidAllocator()
        # The runner's library, byte-compiled once instead of at every start (see ``_pylib``).
        self.pylib = CompiledPylib(self.root / "pylib")
        self.layout = cgroups.detect_layout()
        if self.layout is cgroups.Layout.NONE:
            raise StartError("no cgroup filesystem is mounted; containers cannot be limited")
        self.swap_limit = (
            self.layout is cgroups.Layout.V2 or (cgroups.ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()
        )
        DEFAULT_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
        for folder in (self.root, self.state_dir, self.bundles):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- host view -------------------------------------------------------------------------

    def enter_host_view(self) -> None:
        """Make this thread's mount view one crun accepts (see :mod:`.mountns`); cheap after the first call."""
        if self.layout is cgroups.Layout.HYBRID and self.name == "crun":
            mountns.hide_in_private_namespace(str(cgroups.UNIFIED))

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

    def _mounts(self, spec: LaunchSpec, base: Base) -> tuple[list[oci.Mount], str]:
        """The container's bind mounts, and the interpreter path to run inside it."""
        mounts = base.mounts()
        if not base.covers(spec.python.resolve()):
            prefix = interpreter_prefix(spec.python)
            ensure_mount_point(base.root, prefix)
            mounts.append(oci.Mount(prefix, prefix))
        if spec.venv is not None:
            mounts.append(oci.Mount(spec.venv, oci.VENV))
            try:
                python = str(oci.VENV / spec.python.relative_to(spec.venv))
            except ValueError:
                python = str(spec.python.resolve())
        else:
            python = str(spec.python.resolve())
        cove_pkg = self.pylib.mount_source((spec.pylib_dir / "cove").resolve())
        mounts += [
            oci.Mount(spec.code_dir, oci.CODE),
            oci.Mount(cove_pkg, oci.PYLIB / "cove"),
            oci.Mount(spec.work_dir, oci.WORK, writable=True),
        ]
        for source, inside, _name in spec.volumes:
            ensure_mount_point(base.root, Path(inside))
            mounts.append(oci.Mount(source, Path(inside), writable=True))
        for host, target, writable in spec.extra_mounts:
            if not writable and host == target and base.covers(host):
                continue  # already visible (the host's /usr of the host-libs base)
            ensure_mount_point(base.root, target, host.is_dir())
            mounts.append(oci.Mount(host, target, writable=writable))
        for mount in mounts:
            refuse_host_root(mount)
        return mounts, python

    def _env(self, spec: LaunchSpec, *, late_env: bool = False) -> dict[str, str]:
        inside = dataclasses.replace(
            spec,
            venv=oci.VENV if spec.venv is not None else None,
            code_dir=oci.CODE,
            work_dir=oci.WORK,
            pylib_dir=oci.PYLIB,
            volumes=tuple((Path(path), path, name) for _source, path, name in spec.volumes),
            secret_env={},
        )
        env = build_env(inside)
        if spec.secret_env or late_env:
            env[SECRET_FD_ENV] = str(SECRET_FD)
        env["TMPDIR"] = str(oci.TMP)
        return env

    def _prepare(
        self,
        spec: LaunchSpec,
        timings: dict[str, float],
        *,
        action: str = "run",
        network: _network.NetLease | None = None,
    ) -> _Prepared:
        mark = time.perf_counter()
        base = self.base_for(spec)
        base.prepare()
        lease = self.uids.acquire()
        try:
            spec.work_dir.mkdir(parents=True, exist_ok=True)
            os.chown(spec.work_dir, lease.host_id, lease.host_id)
            mounts, python = self._mounts(spec, base)
            if network is not None:
                mounts.append(oci.Mount(network.hosts_file, Path("/etc/hosts")))
            timings["mount_ms"] = _ms(mark)
            mark = time.perf_counter()
            bundle = oci.Bundle(
                container_id=spec.container_id,
                rootfs=base.root,
                args=[python, "-P", "-m", "cove.runner"],
                env=self._env(spec, late_env=action == "create"),
                mounts=mounts,
                limits=oci.Limits(
                    memory_mib=spec.memory_mib,
                    cpu_millis=spec.cpu_millis,
                    pids=spec.pids_limit or self.pids_limit,
                    tmp_mib=self.tmp_mib,
                ),
                host_id=lease.host_id,
                cgroups_path=f"{CGROUP_PARENT}/{spec.container_id}",
                swap_limit=self.swap_limit,
                # Volumes are shared through a group, not an owner (see cove._host.volumes).
                extra_gids=((CONTAINER_VOLUME_GID, VOLUME_GID),) if spec.volumes else (),
                umask=0o002 if spec.volumes else None,
                network_ns=network.netns_path if network is not None else None,
                devices=spec.devices,
            )
            bundle_dir = self.bundles / spec.container_id
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(bundle_dir)
            bundle_dir.mkdir(mode=0o700, parents=True)
            (bundle_dir / "config.json").write_text(json.dumps(oci.build_config(bundle)))
            timings["spec_ms"] = _ms(mark)
        except BaseException:
            lease.release()
            raise
        argv = self.command(
            action,
            "--bundle",
            str(bundle_dir),
            "--pid-file",
            str(bundle_dir / "pid"),
            "--preserve-fds",
            "3" if spec.secret_env or action == "create" else "2",
        )
        argv.append(spec.container_id)
        return _Prepared(container_id=spec.container_id, bundle_dir=bundle_dir, lease=lease, argv=argv, network=network)

    async def start(self, spec: LaunchSpec, listener: socket.socket) -> CrunHandle:
        timings: dict[str, float] = {}
        prepared = await self._prepare_checked(spec, timings, action="run")
        secrets_fd = secret_memfd(spec.secret_env) if spec.secret_env else None
        try:
            spawned = await self._spawn(prepared, prepared.argv, listener, secrets_fd, timings)
        finally:
            if secrets_fd is not None:
                os.close(secrets_fd)
        handle = CrunHandle(
            self, spec.container_id, spawned.pid, prepared, *spawned.readers, spawned.started, timings, spec.memory_mib
        )
        log.info(
            "container started",
            extra={"container_id": spec.container_id, "runtime": self.name, "crun_pid": spawned.pid},
        )
        return handle

    async def create(self, spec: LaunchSpec, listener: socket.socket) -> CreatedContainer:
        """Make the container ahead (``crun create``: namespaces, mounts, cgroup, fd 3) without running it.

        :meth:`CreatedContainer.start` runs it later for a container id chosen then; the variables
        only known then (that id, secrets) travel in the late-environment memfd (fd 5), which the
        runner reads before any user code. The container's parent is a small shim (see
        :mod:`._shim`) that reports its exit status as ``crun run`` would.
        """
        timings: dict[str, float] = {}
        prepared = await self._prepare_checked(spec, timings, action="create")
        late_fd = os.memfd_create("cove-late-env", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        status_r, status_w = os.pipe()
        try:
            argv = [
                sys.executable,
                "-I",
                "-S",
                str(_SHIM),
                str(_SHIM_STATUS_FD),
                str(prepared.bundle_dir / "pid"),
                "3",
                *prepared.argv,
            ]
            spawned = await self._spawn(prepared, argv, listener, late_fd, timings, status_w=status_w)
        except BaseException:
            os.close(late_fd)
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        status = await _reader(status_r)
        line = (await status.readline()).decode(errors="replace").split()
        if not line or line[0] != "created":
            os.close(late_fd)
            stderr = await _drain(spawned.readers[1])
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spawned.pid, 0)
            await self._cleanup(spec.container_id, prepared)
            raise StartError(f"{self.name} create failed: {stderr.strip()[-500:] or ' '.join(line) or 'no reason'}")
        timings["create_ms"] = _ms(spawned.started)
        return CreatedContainer(self, spec, prepared, spawned, late_fd, timings)

    async def _prepare_checked(self, spec: LaunchSpec, timings: dict[str, float], *, action: str) -> _Prepared:
        if spec.rootfs is None and not spec.python.exists():
            # (With its own root the venv's interpreter link points into that root, not at the host.)
            raise StartError(f"the image's interpreter {spec.python} does not exist")
        self.enter_host_view()
        network = None
        if spec.network:
            mark = time.perf_counter()
            network = await _network.attach(spec.container_id, spec.network, self.root / "net", self.net_files)
            timings["network_ms"] = _ms(mark)
        try:
            return self._prepare(spec, timings, action=action, network=network)
        except BaseException as exc:
            if network is not None:
                await _network.release(network)
            if isinstance(exc, OSError):
                raise StartError(f"cannot prepare the container: {exc}") from exc
            raise

    async def _spawn(
        self,
        prepared: _Prepared,
        argv: list[str],
        listener: socket.socket,
        late_fd: int | None,
        timings: dict[str, float],
        *,
        status_w: int | None = None,
    ) -> _Spawned:
        """``posix_spawn`` ``argv`` with stdout, stderr, the listener (3), the ready pipe (4) and fd 5."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        staged: list[int] = []
        # crun's own environment: only what it needs, plus the id so a restarted worker recognises it.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "COVE_CONTAINER_ID": prepared.container_id}
        try:
            passed = [out_w, err_w, listener.fileno(), ready_w]
            if late_fd is not None:
                passed.append(late_fd)
            staged = [_stage(fd) for fd in passed]
            actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                *((os.POSIX_SPAWN_DUP2, fd, target) for fd, target in zip(staged, range(1, 6), strict=False)),
            ]
            if status_w is not None:
                staged.append(_stage(status_w))
                actions.append((os.POSIX_SPAWN_DUP2, staged[-1], _SHIM_STATUS_FD))
            started = time.perf_counter()
            try:
                pid = os.posix_spawn(
                    argv[0],
                    argv,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
                    setsigmask=(),
                )
            except OSError as exc:
                await self._cleanup(prepared.container_id, prepared)
                raise StartError(f"cannot start {argv[0]}: {exc.strerror}") from exc
            timings["spawn_ms"] = _ms(started)
        except BaseException:
            for fd in (out_r, err_r, ready_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, ready_w, *staged):
                os.close(fd)
        readers = (await _reader(out_r), await _reader(err_r), await _reader(ready_r))
        return _Spawned(pid, readers, started)

    # --- after the exit ----------------------------------------------------------------------

    async def _cleanup(self, container_id: str, prepared: _Prepared) -> None:
        """Remove whatever crun left (it normally deletes its own state and cgroup on exit)."""
        try:
            if (self.state_dir / container_id).exists():
                await self._run("delete", "--force", container_id)
            cgroups.remove(self.layout, f"{CGROUP_PARENT}/{container_id}")
            shutil.rmtree(prepared.bundle_dir, ignore_errors=True)
            if prepared.network is not None:
                await _network.release(prepared.network)
        finally:
            prepared.lease.release()

    async def _run(self, *args: str) -> int:
        """Run a crun subcommand from this (the loop's) thread, which has the right mount view.

        Spawned directly and awaited through a pidfd rather than with asyncio's
        subprocess support: a caller cancelled while asyncio is still setting up
        a subprocess's pipes can wait forever for them (seen when a worker is
        stopped while it discards a parked container), and a cancelled wait here
        leaves the command to finish on its own.
        """
        self.enter_host_view()
        with tempfile.TemporaryFile() as err:
            pid = os.posix_spawn(
                self.binary,
                self.command(*args),
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                ],
            )
            code = await wait_child(pid)
            if code:
                err.seek(0)
                message = err.read(4000).decode(errors="replace").strip()[:500]
                log.warning("%s %s failed", self.name, args[0], extra={"error": message})
        return code

    def reap_stale(self) -> int:
        """Delete containers a previous run of this worker left behind; return how many."""
        self.enter_host_view()
        count = 0
        with contextlib.suppress(OSError):
            for entry in self.state_dir.iterdir():
                subprocess.run(self.command("delete", "--force", entry.name), capture_output=True, check=False)
                cgroups.remove(self.layout, f"{CGROUP_PARENT}/{entry.name}")
                count += 1
        with contextlib.suppress(OSError):
            for entry in self.bundles.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
        _network.reap_stale(self.root / "net")
        self.pylib.remove_others(COVE_PACKAGE)
        self.pylib.mount_source(COVE_PACKAGE)  # starts building the compiled copy for the first containers
        if count:
            log.warning("deleted containers left by a previous run", extra={"count": count, "runtime": self.name})
        return count
