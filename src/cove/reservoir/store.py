"""The reservoir's state: files, projects, events and pre-rendered pages.

Every change goes through :meth:`Store.apply`, which records an event with the
next serial and re-renders the affected pages in the same SQLite transaction.
The event log is therefore both the audit trail and what bundles carry: a
bundle is the events after a serial plus the blobs they reference, and
importing it replays those events through the same function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import indexes, render
from .blobs import BlobStore, check_sha256
from .cran import records as cran_records
from .db import connect
from .debian import records as deb_records
from .errors import InvalidPackage, ReservoirConflict, ReservoirError, ReservoirNotFound
from .metadata import CoreMetadata, read_sdist_metadata, read_wheel_metadata
from .models import records as model_records
from .names import normalize, parse_filename
from .paths import Layout
from .rpm import records as rpm_records

ROOT_PAGE = "/"
# Bumped when rendered pages change shape; a root rendered by another version re-renders on open.
PAGES_FORMAT = "2"

EVENT_KINDS = frozenset(
    {
        "file_added",
        "file_removed",
        "yanked",
        "unyanked",
        "quarantined",
        "released",
        "policy_updated",
        "vulndb_updated",
        "index_created",
        "claimed",
        "unclaimed",
        "deb_added",
        "deb_removed",
        "deb_quarantined",
        "deb_released",
        *model_records.EVENT_KINDS,
        *cran_records.EVENT_KINDS,
        *rpm_records.EVENT_KINDS,
    }
)

# Columns of ``files`` that travel in a ``file_added`` event (everything but local state).
RECORD_FIELDS = (
    "filename",
    "project",
    "version",
    "kind",
    "sha256",
    "size",
    "requires_python",
    "upload_time",
    "yanked",
    "yank_reason",
    "metadata_sha256",
    "metadata_size",
    "license_expression",
    "license",
    "classifiers",
    "origin",
    "index",
)
# Event field -> column, where they differ (``index`` is an SQL keyword).
_COLUMN = {"index": "index_name"}


def utcnow() -> str:
    """Now as a PEP 700 ``upload-time`` string."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """One stored distribution file."""

    filename: str
    project: str
    version: str
    kind: str
    sha256: str
    size: int
    requires_python: str | None
    upload_time: str | None
    yanked: bool
    yank_reason: str | None
    metadata_sha256: str | None
    metadata_size: int | None
    license_expression: str | None
    license: str | None
    classifiers: tuple[str, ...]
    origin: str
    status: str = "active"
    reason: str | None = None
    index: str = indexes.DEFAULT_MIRROR

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileRecord:
        return cls(
            filename=row["filename"],
            project=row["project"],
            version=row["version"],
            kind=row["kind"],
            sha256=row["sha256"],
            size=row["size"],
            requires_python=row["requires_python"],
            upload_time=row["upload_time"],
            yanked=bool(row["yanked"]),
            yank_reason=row["yank_reason"],
            metadata_sha256=row["metadata_sha256"],
            metadata_size=row["metadata_size"],
            license_expression=row["license_expression"],
            license=row["license"],
            classifiers=tuple(json.loads(row["classifiers"] or "[]")),
            origin=row["origin"],
            status=row["status"],
            reason=row["reason"],
            index=row["index_name"],
        )

    def event_data(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in RECORD_FIELDS}
        data["classifiers"] = list(self.classifiers)
        return data

    def to_json(self) -> dict[str, Any]:
        data = self.event_data()
        data["status"] = self.status
        data["reason"] = self.reason
        return data


@dataclasses.dataclass(frozen=True)
class Event:
    serial: int
    time: str
    kind: str
    project: str | None
    filename: str | None
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# A policy hook: given a record about to be added, return a reason to quarantine it, or None.
Checker = Callable[[FileRecord], "str | None"]


class Store:
    """One reservoir root. Safe to share between threads; several processes may open the same root."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(Path(root))
        self.layout.ensure()
        self.blobs = BlobStore(self.layout.blobs, self.layout.tmp)
        self._conn = connect(self.layout.database)
        self._lock = threading.RLock()
        self._in_tx = False
        self._dirty: set[str] = set()
        from .policy import make_checker

        self.checker: Checker | None = make_checker(self)
        with self.transaction():
            row = self._conn.execute("SELECT value FROM meta WHERE key='site_id'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta(key, value) VALUES ('site_id', ?)", (uuid.uuid4().hex,))
            indexes.ensure_defaults(self._conn, utcnow())
            if self.get_meta("pages_format") != PAGES_FORMAT:
                self._dirty.update(r[0] for r in self._conn.execute("SELECT name FROM projects"))
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('pages_format', ?)", (PAGES_FORMAT,)
                )
            if self._conn.execute("SELECT 1 FROM pages WHERE key=?", (ROOT_PAGE,)).fetchone() is None:
                self._dirty.add(ROOT_PAGE)

    def close(self) -> None:
        self._conn.close()

    # -- reading -------------------------------------------------------------------------------------------

    @property
    def site_id(self) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key='site_id'").fetchone()
        return str(row[0])

    def serial(self) -> int:
        """The serial of the last event, 0 for an empty store."""
        row = self._conn.execute("SELECT MAX(serial) FROM events").fetchone()
        return int(row[0] or 0)

    def get_file(self, filename: str) -> FileRecord | None:
        row = self._conn.execute("SELECT * FROM files WHERE filename=?", (filename,)).fetchone()
        return FileRecord.from_row(row) if row else None

    def files(
        self, project: str | None = None, *, status: str | None = None, index: str | None = None
    ) -> list[FileRecord]:
        sql, args = "SELECT * FROM files WHERE 1=1", []
        if project is not None:
            sql += " AND project=?"
            args.append(normalize(project))
        if index is not None:
            sql += " AND index_name=?"
            args.append(index)
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        rows = self._conn.execute(sql + " ORDER BY project, filename", args).fetchall()
        return [FileRecord.from_row(r) for r in rows]

    def projects(self) -> list[tuple[str, str]]:
        rows = self._conn.execute("SELECT name, display FROM projects ORDER BY name").fetchall()
        return [(r[0], r[1]) for r in rows]

    def events_since(self, serial: int, until: int | None = None) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE serial > ?", [serial]
        if until is not None:
            sql += " AND serial <= ?"
            args.append(until)
        rows = self._conn.execute(sql + " ORDER BY serial", args).fetchall()
        return [
            Event(r["serial"], r["time"], r["kind"], r["project"], r["filename"], json.loads(r["data"])) for r in rows
        ]

    def page(self, key: str) -> tuple[bytes, bytes] | None:
        row = self._conn.execute("SELECT html, json FROM pages WHERE key=?", (key,)).fetchone()
        return (bytes(row[0]), bytes(row[1])) if row else None

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, for modules of this package that keep their own tables (tokens, vulns, sources)."""
        return self._conn

    # -- transactions --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one. Pages are re-rendered before commit."""
        with self._lock:
            if self._in_tx:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield self._conn
                self._render_dirty()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._in_tx = False
                self._dirty.clear()

    def _render_dirty(self) -> None:
        if not self._dirty:
            return
        names = [i.name for i in indexes.all_indexes(self._conn)]
        for key in sorted(self._dirty):
            if key != ROOT_PAGE:
                self._render_project(key, names)
        self._render_roots(names)

    def _render_roots(self, names: list[str]) -> None:
        """The project lists: one per index and the combined one (names whose owner serves files)."""
        active: dict[str, dict[str, str]] = {name: {} for name in names}
        for idx, name, display in self._conn.execute(
            "SELECT DISTINCT f.index_name, p.name, p.display FROM projects p JOIN files f ON f.project = p.name "
            "WHERE f.status='active'"
        ):
            active.setdefault(idx, {})[name] = display
        held: dict[str, set[str]] = {}
        for project, idx in self._conn.execute(
            "SELECT project, index_name FROM files UNION SELECT project, index_name FROM upstream_links"
        ):
            held.setdefault(project, set()).add(idx)
        claims = dict(self._conn.execute("SELECT project, index_name FROM claims").fetchall())
        combined: dict[str, str] = {}
        for project, idxs in held.items():
            own = indexes.owner(claims.get(project), idxs)
            if own is not None and project in active.get(own, {}):
                combined[project] = active[own][project]
        for key, listing in [(ROOT_PAGE, combined)] + [(f"{name}/", active.get(name, {})) for name in names]:
            projects = sorted(listing.items())
            self._conn.execute(
                "INSERT OR REPLACE INTO pages(key, html, json) VALUES (?, ?, ?)",
                (key, render.root_html(projects), render.root_json(projects)),
            )

    def _render_project(self, project: str, names: list[str]) -> None:
        """Render ``project`` in every index that holds it, and in the combined view unless contested."""
        row = self._conn.execute("SELECT display FROM projects WHERE name=?", (project,)).fetchone()
        if row is None:
            self._conn.executemany(
                "DELETE FROM pages WHERE key=?", [(project,), *((f"{name}/{project}",) for name in names)]
            )
            return
        display = row[0]
        held: set[str] = set()
        entries: dict[str, list[render.FileEntry]] = {}
        for rec in (
            FileRecord.from_row(r) for r in self._conn.execute("SELECT * FROM files WHERE project=?", (project,))
        ):
            held.add(rec.index)
            if rec.status == "active":
                entries.setdefault(rec.index, []).append(
                    render.FileEntry(
                        rec.filename,
                        rec.version,
                        rec.sha256,
                        rec.size,
                        rec.requires_python,
                        rec.upload_time,
                        rec.yanked,
                        rec.yank_reason,
                        rec.metadata_sha256,
                    )
                )
        # Proxy-cache mode: files upstream lists that are not fetched yet (never metadata: not held).
        links = self._conn.execute(
            "SELECT * FROM upstream_links u WHERE project=? AND NOT EXISTS "
            "(SELECT 1 FROM files f WHERE f.filename = u.filename)",
            (project,),
        ).fetchall()
        for r in links:
            held.add(r["index_name"])
            entries.setdefault(r["index_name"], []).append(
                render.FileEntry(
                    r["filename"],
                    r["version"],
                    r["sha256"],
                    r["size"] or 0,
                    r["requires_python"],
                    r["upload_time"],
                    bool(r["yanked"]),
                    r["yank_reason"],
                    None,
                )
            )
        for files in entries.values():
            files.sort(key=lambda e: (render._version_key(e.version), e.filename))
        for name in names:
            key = f"{name}/{project}"
            if name in held:
                self._put_page(key, display, entries.get(name, []), render.INDEX_DEPTH)
            else:
                self._conn.execute("DELETE FROM pages WHERE key=?", (key,))
        claim = indexes.claim_of(self._conn, project)
        own = indexes.owner(claim, held)
        if own is None and held:
            self._conn.execute("DELETE FROM pages WHERE key=?", (project,))  # contested: never merged
        else:
            self._put_page(project, display, entries.get(own, []) if own else [], render.COMBINED_DEPTH)

    def _put_page(self, key: str, display: str, entries: list[render.FileEntry], up: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO pages(key, html, json) VALUES (?, ?, ?)",
            (key, render.project_html(display, entries, up), render.project_json(display, entries, up)),
        )

    def mark_dirty(self, project: str) -> None:
        """Re-render ``project`` (and the root page) when the current transaction commits."""
        with self.transaction():
            self._dirty.update((normalize(project), ROOT_PAGE))

    def rebuild_pages(self) -> None:
        """Re-render every page (after an upgrade changed the page format)."""
        with self.transaction():
            self._dirty.update(name for name, _ in self.projects())
            self._dirty.add(ROOT_PAGE)

    # -- the one way to change state ----------------------------------------------------------------------

    def apply(
        self, kind: str, filename: str | None, data: dict[str, Any], *, time: str | None = None, replay: bool = False
    ) -> int:
        """Apply one change and record it as an event; return its serial.

        Used for local changes and to replay imported events (``replay``), so
        both sides of an air gap go through exactly the same code. A replayed
        event that would change nothing (the file is already there, already
        yanked...) is skipped, which makes re-importing harmless.
        """
        if kind not in EVENT_KINDS:
            raise ReservoirError(f"unknown event kind {kind!r}")
        with self.transaction() as conn:
            if replay and self._is_noop(kind, filename, data):
                return self.serial()
            project = self._mutate(conn, kind, filename, data)
            cur = conn.execute(
                "INSERT INTO events(time, kind, project, filename, data) VALUES (?, ?, ?, ?, ?)",
                (time or utcnow(), kind, project, filename, json.dumps(data, sort_keys=True)),
            )
            serial = int(cur.lastrowid or 0)
            if kind == "file_added" and filename is not None:
                conn.execute("UPDATE files SET added_serial=? WHERE filename=?", (serial, filename))
            elif kind == "claimed" and project is not None:
                conn.execute("UPDATE claims SET serial=? WHERE project=?", (serial, project))
            if project is not None:
                self._dirty.add(project)
                self._dirty.add(ROOT_PAGE)
            return serial

    def _is_noop(self, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
        if kind in deb_records.EVENT_KINDS:
            return deb_records.is_noop(self._conn, kind, filename, data)
        if kind in model_records.EVENT_KINDS:
            return model_records.is_noop(self._conn, kind, data)
        if kind in cran_records.EVENT_KINDS:
            return cran_records.is_noop(self._conn, kind, filename, data)
        if kind in rpm_records.EVENT_KINDS:
            return rpm_records.is_noop(self._conn, kind, filename, data)
        if kind in ("claimed", "unclaimed"):
            claim = indexes.claim_of(self._conn, str(data.get("project")))
            return claim == data.get("index") if kind == "claimed" else claim is None
        if filename is None:
            return False
        current = self.get_file(filename)
        if kind == "file_added":
            return current is not None and current.sha256 == data.get("sha256")
        if current is None:
            return kind == "file_removed"
        return (
            (kind == "yanked" and current.yanked and current.yank_reason == data.get("reason"))
            or (kind == "unyanked" and not current.yanked)
            or (kind == "quarantined" and current.status == "quarantined")
            or (kind == "released" and current.status == "active")
        )

    def _mutate(self, conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> str | None:
        if kind == "policy_updated":
            from .policy import Policy

            Policy.parse(str(data.get("text", "")))  # a bundle must not install a policy this site cannot read
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('policy', ?)", (str(data["text"]),))
            return None
        if kind == "vulndb_updated":
            from . import vulndb

            sha = check_sha256(str(data.get("sha256")))
            if not self.blobs.has(sha):
                raise ReservoirError(f"vulnerability database blob {sha} is missing")
            ecosystem = vulndb.check_ecosystem(str(data.get("ecosystem") or "PyPI"))
            vulndb.load(conn, vulndb.read_zip(self.blobs.path(sha), ecosystem), ecosystem)
            return None
        if kind in deb_records.EVENT_KINDS:
            deb_records.apply_event(conn, kind, filename, data)
            return None
        if kind in model_records.EVENT_KINDS:
            model_records.apply_event(conn, self.blobs, kind, data)
            return None
        if kind in cran_records.EVENT_KINDS:
            cran_records.apply_event(conn, self.blobs, kind, filename, data)
            return None  # R packages have no simple-index pages; the CRAN index renders from its table
        if kind in rpm_records.EVENT_KINDS:
            rpm_records.apply_event(conn, self.blobs, kind, filename, data)
            return None  # RPM metadata is published to disk after the change (see .rpm.publish)
        if kind == "index_created":
            name = indexes.check_name(str(data.get("name")))
            if data.get("kind") not in indexes.KINDS:
                raise ReservoirError(f"index kind must be one of {', '.join(indexes.KINDS)}")
            conn.execute(
                "INSERT OR IGNORE INTO indexes(name, kind, created) VALUES (?, ?, ?)", (name, data["kind"], utcnow())
            )
            self._dirty.add(ROOT_PAGE)
            return None
        if kind in ("claimed", "unclaimed"):
            project = str(data.get("project") or "")
            if not project or normalize(project) != project:
                raise ReservoirError(f"{kind} event names an invalid project {project!r}")
            if kind == "claimed":
                index = indexes.check_name(str(data.get("index")))
                conn.execute(
                    "INSERT OR IGNORE INTO indexes(name, kind, created) VALUES (?, 'hosted', ?)", (index, utcnow())
                )
                conn.execute(
                    "INSERT OR IGNORE INTO projects(name, display) VALUES (?, ?)",
                    (project, data.get("display") or project),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO claims(project, index_name, serial) VALUES (?, ?, 0)", (project, index)
                )
            else:
                conn.execute("DELETE FROM claims WHERE project=?", (project,))
            return project
        if filename is None:
            raise ReservoirError(f"event {kind} needs a filename")
        current = self.get_file(filename)
        if kind == "file_added":
            record = _record_from_event(filename, data)
            if current is not None:
                if current.sha256 == record.sha256:
                    return None
                raise ReservoirConflict(f"{filename} already exists with different content; files are immutable")
            conn.execute(
                "INSERT OR IGNORE INTO projects(name, display) VALUES (?, ?)",
                (record.project, data.get("display") or record.project),
            )
            # An index named by a replayed event but unknown here (created on the other side): keep its files apart.
            conn.execute(
                "INSERT OR IGNORE INTO indexes(name, kind, created) VALUES (?, 'mirror', ?)", (record.index, utcnow())
            )
            values = record.event_data()
            values["classifiers"] = json.dumps(values["classifiers"])
            cols = ", ".join(_COLUMN.get(k, k) for k in RECORD_FIELDS)
            marks = ", ".join("?" for _ in RECORD_FIELDS)
            conn.execute(
                f"INSERT INTO files({cols}, added_serial) VALUES ({marks}, 0)", [values[k] for k in RECORD_FIELDS]
            )
            return record.project
        if current is None:
            raise ReservoirNotFound(f"no such file {filename!r}")
        if kind == "file_removed":
            conn.execute("DELETE FROM files WHERE filename=?", (filename,))
        elif kind == "yanked":
            conn.execute("UPDATE files SET yanked=1, yank_reason=? WHERE filename=?", (data.get("reason"), filename))
        elif kind == "unyanked":
            conn.execute("UPDATE files SET yanked=0, yank_reason=NULL WHERE filename=?", (filename,))
        elif kind == "quarantined":
            conn.execute(
                "UPDATE files SET status='quarantined', reason=? WHERE filename=?",
                (data.get("reason") or "quarantined", filename),
            )
        elif kind == "released":
            conn.execute("UPDATE files SET status='active', reason=NULL WHERE filename=?", (filename,))
        return current.project

    # -- convenience operations ----------------------------------------------------------------------------

    def add_file(
        self,
        path: Path,
        filename: str,
        *,
        origin: str,
        upload_time: str | None = None,
        expected_sha256: str | None = None,
        yanked: bool = False,
        yank_reason: str | None = None,
        display: str | None = None,
        move: bool = False,
        stamp_now: bool = True,
        index: str = indexes.DEFAULT_MIRROR,
    ) -> tuple[FileRecord, bool]:
        """Validate and ingest one distribution file; return ``(record, added)``.

        ``added`` is False when the same file (same name, same hash) is already
        held, which keeps syncs idempotent; the same name with other content is
        a :class:`ReservoirConflict`. With ``move`` the source (a temp file in the
        store's ``tmp``) is renamed into the blob store instead of copied.
        ``upload_time`` is the upstream's; with ``stamp_now`` a missing one
        becomes now (uploads), otherwise it stays unknown (mirrored files).
        Into a hosted ``index`` the name must pass :func:`indexes.admit_hosted`
        (checked before any byte is stored, and again under the write lock).
        """
        dist = parse_filename(filename)
        target = indexes.get(self._conn, index)
        if target.kind == "hosted":
            indexes.admit_hosted(self._conn, target.name, dist.project)
        sha256, size = _hash_file(path)
        if expected_sha256 is not None and sha256 != expected_sha256.lower():
            raise InvalidPackage(f"{filename}: sha256 mismatch (expected {expected_sha256}, got {sha256})")
        existing = self.get_file(filename)
        if existing is not None:
            if existing.sha256 == sha256:
                return existing, False
            raise ReservoirConflict(f"File already exists: {filename} (files are immutable and never overwritten)")
        meta: CoreMetadata | None
        meta = read_wheel_metadata(path, dist) if dist.kind == "wheel" else read_sdist_metadata(path, dist)
        metadata_sha256 = metadata_size = None
        if dist.kind == "wheel" and meta is not None:
            metadata_sha256, metadata_size = self.blobs.put_bytes(meta.raw)
        if move:
            self.blobs._install(str(path), sha256)
        else:
            with path.open("rb") as fh:
                self.blobs.put_file(fh, expected_sha256=sha256)
        record = FileRecord(
            filename=filename,
            project=dist.project,
            version=dist.version,
            kind=dist.kind,
            sha256=sha256,
            size=size,
            requires_python=meta.requires_python if meta else None,
            upload_time=upload_time or (utcnow() if stamp_now else None),
            yanked=yanked,
            yank_reason=yank_reason if yanked else None,
            metadata_sha256=metadata_sha256,
            metadata_size=metadata_size,
            license_expression=meta.license_expression if meta else None,
            license=meta.license if meta else None,
            classifiers=meta.classifiers if meta else (),
            origin=origin,
            index=target.name,
        )
        data = record.event_data()
        data["display"] = display or (meta.name if meta else dist.project)
        with self.transaction():
            if self.get_file(filename) is not None:  # lost a race with another writer
                raise ReservoirConflict(f"File already exists: {filename} (files are immutable and never overwritten)")
            if target.kind == "hosted" and indexes.admit_hosted(self._conn, target.name, record.project):
                self.apply(
                    "claimed", None, {"project": record.project, "index": target.name, "display": data["display"]}
                )
            self.apply("file_added", filename, data)
            reason = self.checker(record) if self.checker else None
            if reason:
                self.apply("quarantined", filename, {"reason": reason})
        stored = self.get_file(filename)
        assert stored is not None
        return stored, True

    def yank(self, filename: str, reason: str | None = None) -> int:
        return self.apply("yanked", self._require(filename).filename, {"reason": reason})

    def unyank(self, filename: str) -> int:
        return self.apply("unyanked", self._require(filename).filename, {})

    def remove(self, filename: str) -> int:
        return self.apply("file_removed", self._require(filename).filename, {})

    def quarantine(self, filename: str, reason: str) -> int:
        return self.apply("quarantined", self._require(filename).filename, {"reason": reason})

    def release(self, filename: str) -> int:
        return self.apply("released", self._require(filename).filename, {})

    def create_index(self, name: str, kind: str) -> int:
        indexes.check_name(name)
        if kind not in indexes.KINDS:
            raise ReservoirError(f"index kind must be one of {', '.join(indexes.KINDS)}")
        with self.transaction():
            if self._conn.execute("SELECT 1 FROM indexes WHERE name=?", (name,)).fetchone():
                raise ReservoirConflict(f"index {name!r} already exists")
            return self.apply("index_created", None, {"name": name, "kind": kind})

    def claim(self, project: str, index: str) -> int:
        """Give ``project`` to ``index`` in the combined view (see :mod:`.indexes`)."""
        name = normalize(project)
        with self.transaction():
            indexes.get(self._conn, index)
            return self.apply("claimed", None, {"project": name, "index": index, "display": project})

    def unclaim(self, project: str) -> int:
        name = normalize(project)
        with self.transaction():
            if indexes.claim_of(self._conn, name) is None:
                raise ReservoirNotFound(f"no index claims {name!r}")
            return self.apply("unclaimed", None, {"project": name})

    def _require(self, filename: str) -> FileRecord:
        record = self.get_file(filename)
        if record is None:
            raise ReservoirNotFound(f"no such file {filename!r}")
        return record


def _record_from_event(filename: str, data: dict[str, Any]) -> FileRecord:
    """Rebuild a record from event data, checking what a bundle could lie about."""
    try:
        dist = parse_filename(filename)
        if data.get("filename") != filename or data.get("project") != dist.project:
            raise ReservoirError(f"event for {filename!r} names another file or project")
        check_sha256(str(data["sha256"]))
        if data.get("metadata_sha256") is not None:
            check_sha256(str(data["metadata_sha256"]))
        return FileRecord(
            filename=filename,
            project=dist.project,
            version=str(data["version"]),
            kind=dist.kind,
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            requires_python=_opt_str(data.get("requires_python")),
            upload_time=_opt_str(data.get("upload_time")),
            yanked=bool(data.get("yanked")),
            yank_reason=_opt_str(data.get("yank_reason")),
            metadata_sha256=_opt_str(data.get("metadata_sha256")),
            metadata_size=int(data["metadata_size"]) if data.get("metadata_size") is not None else None,
            license_expression=_opt_str(data.get("license_expression")),
            license=_opt_str(data.get("license")),
            classifiers=tuple(str(c) for c in data.get("classifiers") or ()),
            origin=str(data.get("origin") or ""),
            index=indexes.check_name(str(data.get("index") or indexes.DEFAULT_MIRROR)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReservoirError(f"malformed file_added event for {filename!r}: {exc}") from None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _hash_file(path: Path) -> tuple[str, int]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def new_temp_path(store: Store, suffix: str = "") -> Path:
    """A fresh path in the store's ``tmp`` (same filesystem as the blobs)."""
    store.layout.tmp.mkdir(parents=True, exist_ok=True)
    return store.layout.tmp / f"in-{uuid.uuid4().hex}{suffix}"


__all__ = ["Event", "FileRecord", "Store", "new_temp_path", "utcnow"]
