"""Where Cove keeps its files on one machine.

Everything lives under one folder, ``$COVE_HOME`` (default
``~/.local/share/cove``), so a home can be moved, backed up or thrown away
whole, and tests can give every server its own.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import secrets
import time
from pathlib import Path

WORKER_ID_FILE = "worker-id"
_WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class HomeInUse(RuntimeError):
    """Another ``cove server`` holds this home; starting a second one there would wreck the first."""


def default_home() -> Path:
    """``$COVE_HOME``, else ``$XDG_DATA_HOME/cove``, else ``~/.local/share/cove``."""
    if os.environ.get("COVE_HOME"):
        return Path(os.environ["COVE_HOME"]).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data) / "cove").resolve()


@dataclasses.dataclass(frozen=True)
class Home:
    """The layout of a Cove home folder."""

    root: Path

    @classmethod
    def resolve(cls, root: str | Path | None = None) -> Home:
        return cls(Path(root).expanduser().resolve() if root else default_home())

    @property
    def database(self) -> Path:
        return self.root / "cove.db"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    @property
    def server_info(self) -> Path:
        """JSON with the running server's URL and pid, for the CLI on this machine."""
        return self.root / "server.json"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def server_lock(self) -> Path:
        """Locked (fcntl) by the server running from this home for as long as it runs; says its pid and URL."""
        return self.root / "server.lock"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def code_blobs(self) -> Path:
        return self.root / "blobs" / "code"

    @property
    def container_logs(self) -> Path:
        return self.root / "logs" / "containers"

    @property
    def uv_cache(self) -> Path:
        """uv's cache; on the same filesystem as ``images`` so installs hardlink."""
        configured = os.environ.get("COVE_UV_CACHE_DIR")
        return Path(configured) if configured else self.root / "cache" / "uv"

    def worker_dir(self, worker_name: str) -> Path:
        return self.root / "workers" / worker_name

    def worker_identity(self, worker_name: str) -> str:
        """The persistent identity of the worker ``worker_name`` of this home, made on first use.

        Gateways tell workers apart by it, never by name: two workers named alike
        (two homes on one host) stay two workers, and a worker restarted on the
        same home is recognised as the same one.
        """
        path = self.worker_dir(worker_name) / WORKER_ID_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_identity(path)
        identity = "wid-" + secrets.token_hex(16)
        with os.fdopen(fd, "w") as fh:
            fh.write(identity + "\n")
        return identity

    def ensure(self) -> None:
        for path in (self.root, self.images, self.code_blobs, self.container_logs):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)


def _read_identity(path: Path) -> str:
    identity = path.read_text().strip()
    if not identity:  # its maker is still writing it
        time.sleep(0.1)
        identity = path.read_text().strip()
    if not _WORKER_ID.match(identity):
        raise RuntimeError(f"{path} does not hold a worker identity ({identity[:80]!r}); remove it to make a new one")
    return identity


class HomeLock:
    """The running server's claim on its home: an fcntl lock held for the server's whole life.

    A second server on the same home would otherwise kill the first one's
    containers, revoke its worker token and overwrite ``server.json``. Gateways
    that share a home on purpose (several on one PostgreSQL, none with a local
    worker) take the lock shared; every other server takes it alone. The lock
    ends with the process, however it ends, so a crash leaves nothing to clean.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self._fd: int | None = None

    def acquire(self, *, pid: int, port: int, url: str, shared: bool = False) -> None:
        """Take the lock without waiting; raise :class:`HomeInUse` naming the holder if another has it."""
        self.home.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home.server_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HomeInUse(self.holder_message()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": pid, "port": port, "url": url, "shared": shared}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def held_by_another(self) -> bool:
        """Whether a server holds this home alone now (checked without keeping any lock)."""
        if not self.home.server_lock.exists():
            return False
        fd = os.open(self.home.server_lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: never in the way of a server's own start
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder_message(self) -> str:
        """Who holds the home, for the error a second start fails with."""
        try:
            info = json.loads(self.home.server_lock.read_text())
            who = f"pid {info['pid']}, port {info['port']}, {info['url']}"
        except (OSError, ValueError, KeyError, TypeError):
            who = "pid unknown"
        return (
            f"another Cove server is running from {self.home.root} ({who}); "
            f"stop it with `cove server --stop --home {self.home.root}`, or start this one with another --home"
        )
