"""The worker's folder on disk: code, sockets, work dirs, logs and the runner's library dir."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import signal
import tempfile
from pathlib import Path

import cove
from cove._host.rmtree import remove_tree
from cove.runtime import UNIX_PATH_MAX

log = logging.getLogger("cove.worker")

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SAFE_HASH = re.compile(r"[0-9a-f]{8,128}")


def check_id(value: str, what: str) -> str:
    """Ids become file names; refuse anything that could step out of a folder."""
    if not _SAFE_ID.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a safe identifier")
    return value


def check_hash(value: str) -> str:
    if not _SAFE_HASH.fullmatch(value):
        raise ValueError(f"code hash {value!r} is not a hex digest")
    return value


def force_rmtree(path: Path) -> None:
    """Remove a tree of any depth even where user code or unpacking made folders read-only; never raises."""
    try:
        remove_tree(path)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


@dataclasses.dataclass(frozen=True)
class WorkerDirs:
    """Paths under ``home.worker_dir(name)``."""

    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pylib(self) -> Path:
        """Holds only a ``cove`` link: the runner's whole PYTHONPATH."""
        return self.root / "pylib"

    def create(self) -> None:
        for path in (self.root, self.code, self.run, self.work, self.logs, self.pylib):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._link_cove()

    def _link_cove(self) -> None:
        target = Path(cove.__file__).resolve().parent
        link = self.pylib / "cove"
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        staging = self.pylib / f".cove-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        staging.symlink_to(target, target_is_directory=True)
        os.replace(staging, link)  # atomic: a starting container never sees a missing link

    def socket_path(self, container_id: str) -> Path:
        """``run/<id>.sock``, or a short folder under /tmp when that path is too long for a unix socket."""
        preferred = self.run / f"{container_id}.sock"
        if len(os.fsencode(preferred)) <= UNIX_PATH_MAX:
            return preferred
        digest = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"cove-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        name = f"{container_id}.sock"
        if len(os.fsencode(short / name)) > UNIX_PATH_MAX:
            name = hashlib.sha256(container_id.encode()).hexdigest()[:24] + ".sock"
        return short / name

    def pid_file(self, container_id: str) -> Path:
        return self.run / f"{container_id}.pid"

    def reap_stale(self) -> int:
        """Kill containers a previous run of this worker left behind (it crashed); return how many.

        A pid is only trusted if that process still carries the container's id in
        its environment, so a recycled pid is never killed.
        """
        killed = 0
        for pid_file in self.run.glob("*.pid"):
            container_id = pid_file.stem
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                if f"COVE_CONTAINER_ID={container_id}".encode() in environ.split(b"\0"):
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
            pid_file.unlink(missing_ok=True)
            force_rmtree(self.work / container_id)
            self.socket_path(container_id).unlink(missing_ok=True)
        if killed:
            log.warning("killed containers left by a previous run", extra={"count": killed})
        return killed
