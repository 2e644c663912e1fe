"""One MPS control daemon per container with a fraction of a GPU.

Measured on an H100 (FACTS.md): several control daemons, each with its own
pipe folder, run side by side on one GPU, and each enforces the pinned-memory
limit and active-thread percentage set in it; a client cannot lift them. One
daemon serves one uid at a time, which a daemon per container (whose processes
all run as the container's one mapped uid) satisfies by construction.

``MpsPlan`` is pure (the exact commands, for tests without a GPU); ``MpsDaemon``
runs a plan. A daemon that does not start, or refuses a limit, is an error: a
fraction never runs without its limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from ._inventory import GpuError

log = logging.getLogger("cove.gpu")

CONTROL_BINARY = "nvidia-cuda-mps-control"
PID_FILE = "nvidia-cuda-mps-control.pid"


@dataclasses.dataclass(frozen=True)
class MpsPlan:
    """The commands that give one container ``memory_mib`` and ``compute`` % of the GPU ``uuid``."""

    root: Path  # the container's MPS folder on the host: pipe/ and log/ below it
    uuid: str
    memory_mib: int
    compute: int
    binary: str = CONTROL_BINARY

    @property
    def pipe_dir(self) -> Path:
        return self.root / "pipe"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def env(self) -> dict[str, str]:
        """The daemon sees only its GPU, so that GPU is its device 0 in the commands below."""
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
            "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir),
            "CUDA_VISIBLE_DEVICES": self.uuid,
        }

    def start_argv(self) -> list[str]:
        return [self.binary, "-d"]

    def limit_commands(self) -> list[str]:
        """Sent to the daemon before any client exists: they become every client's (server's) defaults."""
        return [
            f"set_default_device_pinned_mem_limit 0 {self.memory_mib}M",
            f"set_default_active_thread_percentage {self.compute}",
        ]

    def quit_command(self) -> str:
        return "quit"


class MpsDaemon:
    """Starts, configures and stops the control daemon of one plan."""

    def __init__(self, plan: MpsPlan, timeout: float = 10.0) -> None:
        self.plan = plan
        self.timeout = timeout
        self.pid: int | None = None

    async def start(self) -> None:
        """Create the folders, start the daemon, set the limits; ``GpuError`` with the reason otherwise."""
        plan = self.plan
        binary = shutil.which(plan.binary) if os.sep not in plan.binary else plan.binary
        if binary is None or not os.access(binary, os.X_OK):
            raise GpuError(f"cannot start the MPS control daemon: {plan.binary} is not installed on this worker")
        self._binary = binary
        for folder in (plan.root, plan.pipe_dir, plan.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
            # The container's processes and the MPS server run as the container's mapped uid, unknown
            # until the runtime starts it; the folder is reachable only through the container's own mount.
            folder.chmod(0o777 if folder != plan.root else 0o755)
        code, out = await self._exec(plan.start_argv(), None, plan.log_dir / "start.out")
        if code != 0:
            raise GpuError(f"the MPS control daemon did not start (exit {code}): {out or 'no output'}")
        self.pid = self._read_pid()
        try:
            for command in plan.limit_commands():
                code, out = await self._exec([binary], command)
                if code != 0 or _refused(out):
                    raise GpuError(f"the MPS control daemon refused {command!r}: {out or f'exit {code}'}")
        except BaseException:
            await self.stop()
            raise
        log.info(
            "MPS daemon ready",
            extra={"uuid": plan.uuid, "memory_mib": plan.memory_mib, "compute": plan.compute, "pid": self.pid},
        )

    async def stop(self) -> None:
        """Ask the daemon to quit (it stops its server), then make sure; remove its folder."""
        binary = getattr(self, "_binary", None)
        if binary is not None:
            with contextlib.suppress(Exception):
                await self._exec([binary], self.plan.quit_command())
        pid = self.pid or self._read_pid()
        if pid is not None:
            deadline = time.monotonic() + self.timeout
            while _alive(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if _alive(pid):
                log.warning("MPS daemon did not quit; killing it", extra={"pid": pid})
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.plan.root, ignore_errors=True)

    def _read_pid(self) -> int | None:
        try:
            return int((self.plan.pipe_dir / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    async def _exec(self, argv: list[str], stdin: str | None, output: Path | None = None) -> tuple[int, str]:
        """Run one control command; ``output``: a file for its output (a daemon keeps its copy of a pipe open)."""
        env: Mapping[str, str] = self.plan.env()
        sink = output.open("wb") if output is not None else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=sink if sink is not None else asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
            )
        finally:
            if sink is not None:
                sink.close()
        try:
            out, _ = await asyncio.wait_for(
                proc.communicate(None if stdin is None else (stdin + "\n").encode()), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise GpuError(
                f"the MPS control daemon did not answer {argv[1:] or stdin!r} in {self.timeout:.0f} s"
            ) from None
        if output is not None:
            out = output.read_bytes() if output.exists() else b""
        return proc.returncode or 0, (out or b"").decode(errors="replace").strip()[-500:]


def _refused(output: str) -> bool:
    lowered = output.lower()
    return any(word in lowered for word in ("error", "invalid", "unrecognized", "failed", "cannot"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not reaped yet) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
