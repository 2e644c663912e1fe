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
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blobs import check_sha256
from ..errors import InvalidPackage, ReservoirConflict, ReservoirError
from ..filerepo import records as filerepo
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

TABLE = filerepo.Table(prefix="cran", table="cran_packages", label="R package")
EVENT_KINDS = TABLE.event_kinds
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
    return filerepo.file_digests(path, "md5")["md5"]


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
        TABLE.insert(conn, filename, {f.name: getattr(record, f.name) for f in dataclasses.fields(record)})
        return record.package
    return str(TABLE.change_state(conn, kind, filename, data)["package"])


def is_noop(conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
    return TABLE.is_noop(conn, kind, filename, data)


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
    filerepo.check_size(path, name, MAX_PACKAGE)
    text = description.read_source_package(path, name)
    package, version, fields = description.check(text)
    digests = filerepo.file_digests(path, "sha256", "md5")
    digest = digests["sha256"]
    existing = get(store.conn, name)
    if existing is not None:
        if existing.sha256 == digest:
            return existing, False
        raise ReservoirConflict(f"{name} already exists with other content; packages are immutable")
    if expected_md5 is not None and digests["md5"] != expected_md5.lower():
        raise InvalidPackage(f"{name}: MD5 does not match the upstream index (expected {expected_md5})")
    size = filerepo.store_blob(store, path, digest)
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
        upload_time or _iso(published) or filerepo.utcnow(),
    )

    def verdict() -> str | None:
        stored = get(store.conn, name)
        assert stored is not None
        return judge(store, stored)

    TABLE.commit_new(store, name, record.event_data(), verdict)
    final = get(store.conn, name)
    assert final is not None
    return final, True


def _iso(text: str) -> str | None:
    """CRAN's ``Date/Publication`` (``2024-01-31 12:00:02 UTC``) as ISO 8601, None when it is not one."""
    import datetime as dt

    try:
        parsed = dt.datetime.strptime(text.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def change(store: Store, kind: str, filename: str, reason: str | None = None) -> int:
    """Remove, quarantine or release one package by file name (``kind``: ``cran_removed``, ...)."""
    return TABLE.change(store, kind.removeprefix("cran_"), filename, None, reason)


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
