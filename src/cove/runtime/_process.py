"""The ``process`` engine: the runner as a plain subprocess. No isolation at all.

It exists so Cove works where crun is missing. The runner starts with
``posix_spawn`` (vfork speed even from a large worker process, and the fd
moves happen in the child without Python code running after fork), in its own
session so one signal reaches every process the user's code started.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping

from ._base import LaunchSpec, StartError

log = logging.getLogger("cove.runtime")

_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# Descriptors are staged above this number before they are moved to 0..4 in the child,
# so no move can overwrite a source that a later move still needs.
_STAGING_MIN_FD = 10


def _stage(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _STAGING_MIN_FD)


def volume_env_name(name: str) -> str:
    """``COVE_VOLUME_<NAME>``: where a volume is, for code that cannot rely on the mount path."""
    return "COVE_VOLUME_" + name.upper().replace("-", "_")


def build_env(spec: LaunchSpec) -> dict[str, str]:
    """The runner's whole environment; nothing leaks in from the worker's own."""
    env: dict[str, str] = {
        "PATH": f"{spec.venv / 'bin'}:{_SYSTEM_PATH}" if spec.venv else _SYSTEM_PATH,
        "HOME": str(spec.work_dir),
        "TMPDIR": str(spec.work_dir / "tmp"),
        "LANG": "C.UTF-8",
    }
    if spec.venv:
        env["VIRTUAL_ENV"] = str(spec.venv)
    env.update(spec.env)
    for source, _inside, name in spec.volumes:
        env[volume_env_name(name)] = str(source)
    env.update(spec.secret_env)  # a process engine's environment lives in memory only
    env.update(
        {
            "PYTHONPATH": str(spec.pylib_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",  # the code dir is read-only; don't even try
            "COVE_CONTAINER_ID": spec.container_id,
            "COVE_CODE_DIR": str(spec.code_dir),
            "COVE_WORK_DIR": str(spec.work_dir),
            "COVE_MODULE": spec.module,
            "COVE_FUNCTION": spec.function,
            "COVE_KIND": spec.kind,
            "COVE_CONCURRENCY": str(spec.concurrency),
        }
    )
    return env


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0))
    return reader


class ProcessHandle:
    """A runner started by :class:`ProcessRuntime`."""

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        ready: asyncio.StreamReader,
        spawned_at: float,
        timings: dict[str, float],
    ) -> None:
        self._pid = pid
        self._stdout = stdout
        self._stderr = stderr
        self._ready_reader = ready
        self._ready: bool | None = None
        self._spawned_at = spawned_at
        self._timings = timings
        self._returncode: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._watch_exit()

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

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
    def exit_reason(self) -> str | None:
        return None  # no cgroup, so no memory limit and nothing else to explain

    async def wait_ready(self) -> bool:
        if self._ready is None:
            line = await self._ready_reader.readline()
            self._ready = line == b"ready\n"
            if self._ready:
                self._timings["ready_ms"] = round((time.perf_counter() - self._spawned_at) * 1000, 3)
        return self._ready

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    async def stop(self, grace: float) -> int:
        if self._exited.done():
            return self._exited.result()
        self._signal_group(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), timeout=max(grace, 0.0))
        except TimeoutError:
            log.warning("container did not stop in %.1fs; killing it", grace, extra={"pid": self._pid})
            self.kill()
            return await asyncio.shield(self._exited)

    def _signal_group(self, sig: int) -> None:
        # Safe while the leader is unreaped: its pid (= the group id) cannot be reused until then.
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, sig)

    def _watch_exit(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self._pid)
        except (AttributeError, OSError):
            # Older kernels: wait without reaping in a thread, so the group can still be killed.
            def waiter() -> None:
                with contextlib.suppress(ChildProcessError):
                    os.waitid(os.P_PID, self._pid, os.WEXITED | os.WNOWAIT)
                loop.call_soon_threadsafe(self._on_exit)

            threading.Thread(target=waiter, name=f"cove-wait-{self._pid}", daemon=True).start()
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._on_exit()

        loop.add_reader(pidfd, readable)

    def _on_exit(self) -> None:
        # The leader is a zombie now; kill whatever it left behind before reaping it,
        # so a container never outlives its runner.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self._pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1  # someone else reaped it; the code is lost
        self._returncode = code
        if not self._exited.done():
            self._exited.set_result(code)


class ProcessRuntime:
    """Runs each container as a subprocess of the worker, in its own session.

    NO isolation: the user's code runs as the worker's user, sees the host's
    files, network and processes, and has no memory or cpu limits.
    """

    name = "process"
    isolated = False

    def __init__(self) -> None:
        log.warning(
            "runtime 'process' gives NO isolation: user code runs as this user with full access to the "
            "host's files, network and processes, and without cpu or memory limits; use crun for isolation"
        )

    async def start(self, spec: LaunchSpec, listener: socket.socket) -> ProcessHandle:
        if not spec.python.exists():
            raise StartError(f"the image's interpreter {spec.python} does not exist")
        (spec.work_dir / "tmp").mkdir(parents=True, exist_ok=True)
        argv = [str(spec.python), "-P", "-m", "cove.runner"]
        env = build_env(spec)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        staged: list[int] = []
        try:
            staged = [_stage(fd) for fd in (out_w, err_w, listener.fileno(), ready_w)]
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                *((os.POSIX_SPAWN_DUP2, fd, target) for fd, target in zip(staged, (1, 2, 3, 4), strict=True)),
            ]
            started = time.perf_counter()
            try:
                pid = os.posix_spawn(  # vfork-based, well under a millisecond
                    argv[0],
                    argv,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM),
                    setsigmask=(),
                )
            except OSError as exc:
                raise StartError(f"cannot start {argv[0]}: {exc.strerror}") from exc
            spawn_ms = round((time.perf_counter() - started) * 1000, 3)
        except BaseException:
            for fd in (out_r, err_r, ready_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, ready_w, *staged):
                os.close(fd)
        timings = {"spawn_ms": spawn_ms}
        handle = ProcessHandle(
            pid, await _reader(out_r), await _reader(err_r), await _reader(ready_r), started, timings
        )
        log.info("container process started", extra={"container_id": spec.container_id, "pid": pid})
        return handle
