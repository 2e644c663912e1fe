"""Where Cove keeps its files on one machine.

Everything lives under one folder, ``$COVE_HOME`` (default
``~/.local/share/cove``), so a home can be moved, backed up or thrown away
whole, and tests can give every server its own.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


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

    def ensure(self) -> None:
        for path in (self.root, self.images, self.code_blobs, self.container_logs):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
