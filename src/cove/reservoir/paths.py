"""Where a reservoir keeps its files.

The reservoir must not import the rest of Cove, so it computes its own default
location with the same rule Cove uses for its home: ``$COVE_HOME`` (default
``~/.local/share/cove``) plus ``reservoir``. ``COVE_RESERVOIR_ROOT`` or an
explicit ``--root`` wins over both.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def default_root() -> Path:
    """``$COVE_RESERVOIR_ROOT``, else ``$COVE_HOME/reservoir``, else ``~/.local/share/cove/reservoir``."""
    explicit = os.environ.get("COVE_RESERVOIR_ROOT")
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = os.environ.get("COVE_HOME")
    if home:
        return (Path(home).expanduser() / "reservoir").resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data) / "cove" / "reservoir").resolve()


@dataclasses.dataclass(frozen=True)
class Layout:
    """The folders and files inside one reservoir root."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "reservoir.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def tmp(self) -> Path:
        """Scratch space on the same filesystem as ``blobs`` so finished files move in with one rename."""
        return self.root / "tmp"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def signing_key(self) -> Path:
        return self.keys / "site.key"

    @property
    def public_key(self) -> Path:
        return self.keys / "site.pub"

    @property
    def trusted(self) -> Path:
        """Public keys whose bundles this site accepts."""
        return self.root / "trusted"

    @property
    def debian(self) -> Path:
        """The published apt repository (pool, dists), served under ``/debian/``."""
        return self.root / "debian"

    @property
    def policy(self) -> Path:
        return self.root / "policy.toml"

    def ensure(self) -> None:
        for path in (self.root, self.blobs, self.tmp, self.keys, self.trusted):
            path.mkdir(parents=True, exist_ok=True)
        self.keys.chmod(0o700)
