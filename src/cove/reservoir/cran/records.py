"""R packages in the store, and the ``cran_*`` events that change them.

Events (replayed by bundle imports through the same code):

``cran_added``        ``{filename, package, version, sha256, size, description, origin, upload_time}``
``cran_removed``      ``{}`` (the file name is the event's)
``cran_quarantined``  ``{reason}``
``cran_released``     ``{}``

The ``DESCRIPTION`` travels in the event and is checked again on replay
(name and version must match the file name). The MD5 that ``PACKAGES`` lists
is computed from the stored blob, never taken from an event.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blobs import check_sha256
from ..errors import InvalidPackage, ReservoirConflict, ReservoirError, ReservoirNotFound
from . import description

if TYPE_CHECKING:
    from ..blobs import BlobStore
    from ..store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS cran_packages (
    filename TEXT PRIMARY KEY,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    description TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    upload_time TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    reason TEXT
);
CREATE INDEX IF NOT EXISTS cran_packages_package ON cran_packages(package);
"""

EVENT_KINDS = frozenset({"cran_added", "cran_removed", "cran_quarantined", "cran_released"})
MAX_PACKAGE = 2 * 1024 * 1024 * 1024
# What a ``cran_added`` event carries (everything but the local status and the derived MD5).
_EVENT_FIELDS = ("filename", "package", "version", "sha256", "size", "description", "origin", "upload_time")


@dataclasses.dataclass(frozen=True)
class CranRecord:
    filename: str
    package: str
    version: str
    sha256: str
    size: int
    md5: str
    description: str
    origin: str
    upload_time: str | None
    status: str = "active"
    reason: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CranRecord:
        return cls(*(row[f.name] for f in dataclasses.fields(cls)))

    def event_data(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _EVENT_FIELDS}

    @property
    def fields(self) -> dict[str, str]:
        return description.parse(self.description)

    def to_json(self) -> dict[str, Any]:
        fields = self.fields
        return {
            **{k: getattr(self, k) for k in ("filename", "package", "version", "sha256", "size", "md5", "origin")},
            "upload_time": self.upload_time,
            "license": fields.get("License"),
            "depends": description.dependencies(fields),
            "status": self.status,
            "reason": self.reason,
        }


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_from_event(blobs: BlobStore, filename: str, data: dict[str, Any]) -> CranRecord:
    """Rebuild and check a record from event data (a bundle could lie about any field)."""
    try:
        package, version = description.split_filename(filename)
        text = str(data["description"])
        got_package, got_version, _ = description.check(text)
        if (got_package, got_version) != (package, version) or (data.get("package"), data.get("version")) != (
            package,
            version,
        ):
            raise ReservoirError(f"cran_added event for {filename!r} does not match its DESCRIPTION")
        sha = check_sha256(str(data["sha256"]))
        if not blobs.has(sha):
            raise ReservoirError(f"R package {filename}: blob {sha} is missing")
        upload_time = data.get("upload_time")
        return CranRecord(
            filename,
            package,
            version,
            sha,
            int(data["size"]),
            _md5(blobs.path(sha)),
            text,
            str(data.get("origin") or ""),
            None if upload_time is None else str(upload_time),
        )
    except (KeyError, TypeError, ValueError, InvalidPackage) as exc:
        raise ReservoirError(f"malformed cran_added event for {filename!r}: {exc}") from None


def apply_event(
    conn: sqlite3.Connection, blobs: BlobStore, kind: str, filename: str | None, data: dict[str, Any]
) -> str:
    """The store's mutation for R package events (inside its transaction); returns the package name."""
    if filename is None:
        raise ReservoirError(f"event {kind} needs a filename")
    if kind == "cran_added":
        record = record_from_event(blobs, filename, data)
        row = conn.execute("SELECT sha256 FROM cran_packages WHERE filename=?", (filename,)).fetchone()
        if row is not None and row[0] != record.sha256:
            raise ReservoirConflict(f"{filename} already exists with other content; packages are immutable")
        values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        conn.execute(
            f"INSERT OR IGNORE INTO cran_packages({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
            list(values.values()),
        )
        return record.package
    current = get(conn, filename)
    if current is None:
        raise ReservoirNotFound(f"no R package {filename!r}")
    if kind == "cran_removed":
        conn.execute("DELETE FROM cran_packages WHERE filename=?", (filename,))
    elif kind == "cran_quarantined":
        reason = str(data.get("reason") or "quarantined")
        conn.execute("UPDATE cran_packages SET status='quarantined', reason=? WHERE filename=?", (reason, filename))
    else:
        conn.execute("UPDATE cran_packages SET status='active', reason=NULL WHERE filename=?", (filename,))
    return current.package


def is_noop(conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
    row = conn.execute("SELECT sha256, status FROM cran_packages WHERE filename=?", (filename,)).fetchone()
    if kind == "cran_added":
        return row is not None and row[0] == data.get("sha256")
    if kind == "cran_quarantined":
        return row is not None and row[1] == "quarantined"
    if kind == "cran_released":
        return row is not None and row[1] == "active"
    return row is None


Judge = Callable[["Store", CranRecord], "str | None"]


def add_package(
    store: Store,
    path: Path,
    *,
    judge: Judge,
    filename: str | None = None,
    origin: str = "add",
    upload_time: str | None = None,
    expected_md5: str | None = None,
) -> tuple[CranRecord, bool]:
    """Validate and store one R source package; ``added`` is False when the same file is already held.

    ``judge`` is the policy's verdict (:func:`..policy.cran_reason`); a package it refuses is quarantined in
    the same transaction that adds it. ``expected_md5`` is what an upstream ``PACKAGES`` file lists.
    """
    name = filename or path.name
    if path.stat().st_size > MAX_PACKAGE:
        raise InvalidPackage(f"{name}: larger than the limit of {MAX_PACKAGE} bytes")
    text = description.read_source_package(path, name)
    package, version, fields = description.check(text)
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            sha.update(chunk)
    digest = sha.hexdigest()
    existing = get(store.conn, name)
    if existing is not None:
        if existing.sha256 == digest:
            return existing, False
        raise ReservoirConflict(f"{name} already exists with other content; packages are immutable")
    if expected_md5 is not None and _md5(path) != expected_md5.lower():
        raise InvalidPackage(f"{name}: MD5 does not match the upstream index (expected {expected_md5})")
    with path.open("rb") as fh:
        _, size = store.blobs.put_file(fh, expected_sha256=digest)
    published = (fields.get("Date/Publication") or "").strip()
    record = CranRecord(
        name,
        package,
        version,
        digest,
        size,
        "",
        text,
        origin,
        upload_time or _iso(published) or _now(),
    )
    with store.transaction():
        if get(store.conn, name) is not None:
            raise ReservoirConflict(f"{name} already exists; packages are immutable")
        store.apply("cran_added", name, record.event_data())
        stored = get(store.conn, name)
        assert stored is not None
        reason = judge(store, stored)
        if reason:
            store.apply("cran_quarantined", name, {"reason": reason})
    final = get(store.conn, name)
    assert final is not None
    return final, True


def _now() -> str:
    """Now, the way the store writes upload times (not imported from it: the store imports this module)."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(text: str) -> str | None:
    """CRAN's ``Date/Publication`` (``2024-01-31 12:00:02 UTC``) as ISO 8601, None when it is not one."""
    import datetime as dt

    try:
        parsed = dt.datetime.strptime(text.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def change(store: Store, kind: str, filename: str, reason: str | None = None) -> int:
    """Remove, quarantine or release one package by file name."""
    if get(store.conn, filename) is None:
        raise ReservoirNotFound(f"no R package {filename!r}")
    return store.apply(kind, filename, {"reason": reason} if kind == "cran_quarantined" else {})


def get(conn: sqlite3.Connection, filename: str) -> CranRecord | None:
    row = conn.execute("SELECT * FROM cran_packages WHERE filename=?", (filename,)).fetchone()
    return CranRecord.from_row(row) if row else None


def listing(conn: sqlite3.Connection, package: str | None = None, *, active_only: bool = False) -> list[CranRecord]:
    sql, args = "SELECT * FROM cran_packages WHERE 1=1", []
    if package is not None:
        sql += " AND package=?"
        args.append(package)
    if active_only:
        sql += " AND status='active'"
    rows = conn.execute(sql + " ORDER BY package, filename", args).fetchall()
    return sorted((CranRecord.from_row(r) for r in rows), key=lambda r: (r.package, description.version_key(r.version)))


def latest(conn: sqlite3.Connection) -> list[CranRecord]:
    """The newest active version of each package: what ``PACKAGES`` lists (older ones stay in ``Archive/``)."""
    newest: dict[str, CranRecord] = {}
    for record in listing(conn, active_only=True):
        newest[record.package] = record  # listing() is sorted by version, so the last one wins
    return list(newest.values())
