"""RPMs in the store, and the ``rpm_*`` events that change them.

Events (replayed by bundle imports through the same code; each names its
repository in ``repo``, the file name is the event's):

``rpm_added``        ``{repo, sha256, size, header, origin, upload_time}``
``rpm_removed``      ``{repo}``
``rpm_quarantined``  ``{repo, reason}``
``rpm_released``     ``{repo}``

The header fields travel in the event and are checked again on replay (they
must spell the file name); the file itself was checked at ingest on the
exporting side and is covered by its sha256 in the signed bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blobs import check_sha256
from ..errors import InvalidPackage, ReservoirConflict, ReservoirError
from ..filerepo import records as filerepo
from . import header as rpm_header

if TYPE_CHECKING:
    from ..blobs import BlobStore
    from ..store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS rpm_packages (
    repo TEXT NOT NULL,
    filename TEXT NOT NULL,
    name TEXT NOT NULL,
    evr TEXT NOT NULL,
    arch TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    header TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    upload_time TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    reason TEXT,
    PRIMARY KEY (repo, filename)
);
CREATE INDEX IF NOT EXISTS rpm_packages_name ON rpm_packages(name);
"""

TABLE = filerepo.Table(prefix="rpm", table="rpm_packages", label="RPM", scope="repo")
EVENT_KINDS = TABLE.event_kinds
DEFAULT_REPO = "main"
MAX_PACKAGE = 4 * 1024 * 1024 * 1024
_REPO = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_repo(name: str) -> str:
    if not _REPO.match(name or "") or ".." in name:
        raise ReservoirError(
            f"invalid RPM repository name {name!r} (lowercase letters, digits, '.', '_' and '-', e.g. el9)"
        )
    return name


@dataclasses.dataclass(frozen=True)
class RpmRecord:
    repo: str
    filename: str
    sha256: str
    size: int
    header: rpm_header.RpmHeader
    origin: str
    upload_time: str | None
    status: str = "active"
    reason: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RpmRecord:
        return cls(
            row["repo"],
            row["filename"],
            row["sha256"],
            row["size"],
            rpm_header.RpmHeader.from_json(json.loads(row["header"])),
            row["origin"],
            row["upload_time"],
            row["status"],
            row["reason"],
        )

    @property
    def name(self) -> str:
        return self.header.name

    def event_data(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "sha256": self.sha256,
            "size": self.size,
            "header": self.header.to_json(),
            "origin": self.origin,
            "upload_time": self.upload_time,
        }

    def to_json(self) -> dict[str, Any]:
        h = self.header
        return {
            "repo": self.repo,
            "filename": self.filename,
            "name": h.name,
            "epoch": h.epoch,
            "version": h.version,
            "release": h.release,
            "arch": h.arch,
            "license": h.license,
            "summary": h.summary,
            "sha256": self.sha256,
            "size": self.size,
            "origin": self.origin,
            "upload_time": self.upload_time,
            "status": self.status,
            "reason": self.reason,
        }


def record_from_event(blobs: BlobStore, filename: str, data: dict[str, Any]) -> RpmRecord:
    """Rebuild and check a record from event data (a bundle could lie about any field)."""
    try:
        header = rpm_header.RpmHeader.from_json(dict(data["header"]))
        if header.filename != filename:
            raise ReservoirError(f"rpm_added event for {filename!r} carries the header of {header.filename}")
        sha = check_sha256(str(data["sha256"]))
        if not blobs.has(sha):
            raise ReservoirError(f"RPM {filename}: blob {sha} is missing")
        upload_time = data.get("upload_time")
        return RpmRecord(
            check_repo(str(data.get("repo"))),
            filename,
            sha,
            int(data["size"]),
            header,
            str(data.get("origin") or ""),
            None if upload_time is None else str(upload_time),
        )
    except (KeyError, TypeError, ValueError, InvalidPackage) as exc:
        raise ReservoirError(f"malformed rpm_added event for {filename!r}: {exc}") from None


def apply_event(
    conn: sqlite3.Connection, blobs: BlobStore, kind: str, filename: str | None, data: dict[str, Any]
) -> str:
    """The store's mutation for RPM events (inside its transaction); returns the package name."""
    if filename is None:
        raise ReservoirError(f"event {kind} needs a filename")
    if kind == TABLE.kind("added"):
        record = record_from_event(blobs, filename, data)
        TABLE.insert(
            conn,
            filename,
            {
                "repo": record.repo,
                "filename": filename,
                "name": record.header.name,
                "evr": record.header.evr,
                "arch": record.header.arch,
                "sha256": record.sha256,
                "size": record.size,
                "header": json.dumps(record.header.to_json(), sort_keys=True),
                "origin": record.origin,
                "upload_time": record.upload_time,
            },
        )
        return record.header.name
    return str(TABLE.change_state(conn, kind, filename, data)["name"])


def is_noop(conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
    return TABLE.is_noop(conn, kind, filename, data)


Judge = Callable[["Store", RpmRecord], "str | None"]


def add_package(
    store: Store,
    path: Path,
    *,
    judge: Judge,
    repo: str = DEFAULT_REPO,
    filename: str | None = None,
    origin: str = "add",
) -> tuple[RpmRecord, bool]:
    """Check and store one RPM in ``repo``; ``added`` is False when the same file is already there.

    ``judge`` is the policy's verdict (:func:`..policy.rpm_reason`); a package it refuses is quarantined in
    the same transaction that adds it.
    """
    check_repo(repo)
    name = filename or path.name
    rpm_header.split_filename(name)
    filerepo.check_size(path, name, MAX_PACKAGE)
    header = rpm_header.read(path, name)
    digest = filerepo.file_digests(path, "sha256")["sha256"]
    existing = get(store.conn, repo, name)
    if existing is not None:
        if existing.sha256 == digest:
            return existing, False
        raise ReservoirConflict(f"{name} already exists in {repo} with other content; packages are immutable")
    size = filerepo.store_blob(store, path, digest)
    built = dt.datetime.fromtimestamp(header.buildtime, dt.UTC) if header.buildtime else None
    upload_time = built.strftime("%Y-%m-%dT%H:%M:%SZ") if built else filerepo.utcnow()
    record = RpmRecord(repo, name, digest, size, header, origin, upload_time)

    def verdict() -> str | None:
        stored = get(store.conn, repo, name)
        assert stored is not None
        return judge(store, stored)

    TABLE.commit_new(store, name, record.event_data(), verdict)
    final = get(store.conn, repo, name)
    assert final is not None
    return final, True


def get(conn: sqlite3.Connection, repo: str, filename: str) -> RpmRecord | None:
    row = TABLE.row(conn, filename, {"repo": repo})
    return RpmRecord.from_row(row) if row else None


def listing(
    conn: sqlite3.Connection, repo: str | None = None, name: str | None = None, *, active_only: bool = False
) -> list[RpmRecord]:
    sql, args = "SELECT * FROM rpm_packages WHERE 1=1", []
    for column, value in (("repo", repo), ("name", name)):
        if value is not None:
            sql += f" AND {column}=?"
            args.append(value)
    if active_only:
        sql += " AND status='active'"
    return [RpmRecord.from_row(r) for r in conn.execute(sql + " ORDER BY repo, name, filename", args)]


def repos(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT DISTINCT repo FROM rpm_packages ORDER BY repo")]
