"""This home's package reservoir as the gateway reads it: its policy and advisories, for auditing images.

The store is opened once, on first use, and kept for the gateway's life
(opening writes, so it is not opened before a reservoir exists; auditing must
not create one). The reservoir's HTTP app, served under ``/reservoir/``, opens
its own.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..reservoir.store import Store as ReservoirStore


class LocalReservoir:
    """The reservoir at ``root``; the store is safe to share between the threads that audit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._store: ReservoirStore | None = None
        self._opening = threading.Lock()

    def exists(self) -> bool:
        """Whether this home has a reservoir at all."""
        return (self.root / "reservoir.db").is_file()

    def store(self) -> ReservoirStore:
        """The reservoir's store, opened on the first call (from any thread)."""
        with self._opening:
            if self._store is None:
                self._store = ReservoirStore(self.root)
            return self._store
