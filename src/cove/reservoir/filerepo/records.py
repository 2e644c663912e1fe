"""The table and the four events of a one-file-per-package repository kind.

A :class:`Table` describes one kind: its event prefix, its SQL table and, for
kinds whose files live in several repositories (RPMs), the data field that
names the repository. The same file name may then exist once per repository.
The mutations here run inside the store's transaction (:meth:`..store.Store.apply`),
for local changes and for replayed bundle events alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidPackage, ReservoirConflict, ReservoirError, ReservoirNotFound

if TYPE_CHECKING:
    from ..store import Store

ACTIONS = ("added", "removed", "quarantined", "released")


@dataclasses.dataclass(frozen=True)
class Table:
    """One kind: events ``<prefix>_<action>`` change rows of ``table``; ``label`` names a file in messages."""

    prefix: str
    table: str
    label: str
    scope: str | None = None  # the data field naming the repository a file belongs to (None: one repository)

    @property
    def event_kinds(self) -> frozenset[str]:
        return frozenset(f"{self.prefix}_{action}" for action in ACTIONS)

    def kind(self, action: str) -> str:
        return f"{self.prefix}_{action}"

    def _where(self, filename: str, data: dict[str, Any]) -> tuple[str, list[str]]:
        if self.scope is None:
            return "filename=?", [filename]
        return f"filename=? AND {self.scope}=?", [filename, str(data.get(self.scope) or "")]

    def scope_data(self, scope: str | None) -> dict[str, Any]:
        """The event data that names the repository (empty for a kind with one repository)."""
        return {} if self.scope is None else {self.scope: scope}

    def row(self, conn: sqlite3.Connection, filename: str, data: dict[str, Any]) -> sqlite3.Row | None:
        where, args = self._where(filename, data)
        row: sqlite3.Row | None = conn.execute(f"SELECT * FROM {self.table} WHERE {where}", args).fetchone()
        return row

    def insert(self, conn: sqlite3.Connection, filename: str, values: dict[str, Any]) -> None:
        """Add a row; the same name with other content is refused (package files are immutable)."""
        existing = self.row(conn, filename, values)
        if existing is not None and existing["sha256"] != values["sha256"]:
            raise ReservoirConflict(f"{filename} already exists with other content; packages are immutable")
        conn.execute(
            f"INSERT OR IGNORE INTO {self.table}({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
            list(values.values()),
        )

    def change_state(self, conn: sqlite3.Connection, kind: str, filename: str, data: dict[str, Any]) -> sqlite3.Row:
        """Apply a removed, quarantined or released event; returns the row as it was."""
        current = self.row(conn, filename, data)
        if current is None:
            raise ReservoirNotFound(f"no {self.label} {filename!r}")
        where, args = self._where(filename, data)
        if kind == self.kind("removed"):
            conn.execute(f"DELETE FROM {self.table} WHERE {where}", args)
        elif kind == self.kind("quarantined"):
            reason = str(data.get("reason") or "quarantined")
            conn.execute(f"UPDATE {self.table} SET status='quarantined', reason=? WHERE {where}", [reason, *args])
        elif kind == self.kind("released"):
            conn.execute(f"UPDATE {self.table} SET status='active', reason=NULL WHERE {where}", args)
        else:
            raise ReservoirError(f"unknown event kind {kind!r}")
        return current

    def is_noop(self, conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
        """Whether a replayed event would change nothing (re-importing a bundle is harmless)."""
        row = self.row(conn, filename or "", data)
        if kind == self.kind("added"):
            return row is not None and row["sha256"] == data.get("sha256")
        if kind == self.kind("quarantined"):
            return row is not None and row["status"] == "quarantined"
        if kind == self.kind("released"):
            return row is not None and row["status"] == "active"
        return row is None

    def change(
        self, store: Store, action: str, filename: str, scope: str | None = None, reason: str | None = None
    ) -> int:
        """Remove, quarantine or release one file by name (in ``scope``, for kinds with repositories)."""
        data = self.scope_data(scope)
        if self.row(store.conn, filename, data) is None:
            where = f" in {self.scope} {scope!r}" if self.scope else ""
            raise ReservoirNotFound(f"no {self.label} {filename!r}{where}")
        if action == "quarantined":
            data["reason"] = reason
        return store.apply(self.kind(action), filename, data)

    def commit_new(self, store: Store, filename: str, data: dict[str, Any], judge: Callable[[], str | None]) -> None:
        """Apply ``<prefix>_added`` and, when ``judge`` (the policy, asked inside the same transaction) names a
        reason, ``<prefix>_quarantined``: a refused file is never visible as active, not even for a moment."""
        with store.transaction():
            if self.row(store.conn, filename, data) is not None:
                raise ReservoirConflict(f"{filename} already exists; packages are immutable")
            store.apply(self.kind("added"), filename, data)
            reason = judge()
            if reason:
                scope = str(data.get(self.scope)) if self.scope else None
                store.apply(self.kind("quarantined"), filename, {**self.scope_data(scope), "reason": reason})


def file_digests(path: Path, *algorithms: str) -> dict[str, str]:
    """Hex digests of a file, read once (``sha256``, ``md5``, ...)."""
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def check_size(path: Path, name: str, limit: int) -> None:
    if path.stat().st_size > limit:
        raise InvalidPackage(f"{name}: larger than the limit of {limit} bytes")


def store_blob(store: Store, path: Path, sha256: str) -> int:
    """Copy a checked file into the blob store under its sha256; return its size."""
    with path.open("rb") as fh:
        _, size = store.blobs.put_file(fh, expected_sha256=sha256)
    return size


def utcnow() -> str:
    """Now, the way the store writes upload times (not imported from it: the store imports the kinds)."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
