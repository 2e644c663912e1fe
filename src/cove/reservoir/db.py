"""The reservoir's SQLite database: schema and connections.

SQLite in WAL mode lets the server read pre-rendered pages while a sync or an
import writes in another process; a writer commits everything a change needs
(rows, the event, the new pages) in one transaction, so readers see either the
old state or the new one, never a mix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .bundle_log import SCHEMA as BUNDLE_LOG_SCHEMA
from .cran.records import SCHEMA as CRAN_SCHEMA
from .models.records import SCHEMA as MODEL_SCHEMA
from .rpm.records import SCHEMA as RPM_SCHEMA

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, display TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    filename TEXT PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects(name),
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    requires_python TEXT,
    upload_time TEXT,
    yanked INTEGER NOT NULL DEFAULT 0,
    yank_reason TEXT,
    metadata_sha256 TEXT,
    metadata_size INTEGER,
    license_expression TEXT,
    license TEXT,
    classifiers TEXT NOT NULL DEFAULT '[]',
    origin TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    reason TEXT,
    added_serial INTEGER NOT NULL,
    index_name TEXT NOT NULL DEFAULT 'pypi'
);
CREATE INDEX IF NOT EXISTS files_project ON files(project);
CREATE TABLE IF NOT EXISTS events (
    serial INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    project TEXT,
    filename TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS pages (
    key TEXT PRIMARY KEY,
    html BLOB NOT NULL,
    json BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    source_id TEXT PRIMARY KEY,
    serial INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vulns (
    id TEXT NOT NULL,
    project TEXT NOT NULL,
    record TEXT NOT NULL,
    ecosystem TEXT NOT NULL DEFAULT 'PyPI',
    PRIMARY KEY (id, project)
);
CREATE INDEX IF NOT EXISTS vulns_project ON vulns(project);
CREATE TABLE IF NOT EXISTS upstream_links (
    filename TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requires_python TEXT,
    upload_time TEXT,
    yanked INTEGER NOT NULL DEFAULT 0,
    yank_reason TEXT,
    size INTEGER,
    index_name TEXT NOT NULL DEFAULT 'pypi'
);
CREATE INDEX IF NOT EXISTS upstream_links_project ON upstream_links(project);
CREATE TABLE IF NOT EXISTS upstream_listings (
    project TEXT NOT NULL,
    index_name TEXT NOT NULL,
    fetched REAL NOT NULL,
    PRIMARY KEY (project, index_name)
);
CREATE TABLE IF NOT EXISTS indexes (name TEXT PRIMARY KEY, kind TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (project TEXT PRIMARY KEY, index_name TEXT NOT NULL, serial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS debs (
    suite TEXT NOT NULL,
    component TEXT NOT NULL,
    filename TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    architecture TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    control TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    reason TEXT,
    release_time TEXT,
    PRIMARY KEY (suite, filename)
);
CREATE INDEX IF NOT EXISTS debs_filename ON debs(filename);
CREATE TABLE IF NOT EXISTS held_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id TEXT NOT NULL,
    base_serial INTEGER NOT NULL,
    target_serial INTEGER NOT NULL,
    bundle TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'held',
    decided TEXT,
    note TEXT,
    summary TEXT NOT NULL DEFAULT '{}',
    events TEXT NOT NULL DEFAULT '[]',
    blobs TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    index_name TEXT NOT NULL,
    project TEXT NOT NULL,
    filename TEXT NOT NULL,
    token TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind, index_name, project, filename, token)
);
"""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database (creating the schema unless ``readonly``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if not readonly:
        conn.executescript(SCHEMA + MODEL_SCHEMA + CRAN_SCHEMA + RPM_SCHEMA + BUNDLE_LOG_SCHEMA)
        _migrate(conn)
        _add_columns(conn)
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    return conn


# Columns added after version 2, with their definitions: older roots get them on open.
_ADDED_COLUMNS = (
    ("vulns", "ecosystem", "TEXT NOT NULL DEFAULT 'PyPI'"),
    ("debs", "status", "TEXT NOT NULL DEFAULT 'active'"),
    ("debs", "reason", "TEXT"),
    ("debs", "release_time", "TEXT"),
)


def _add_columns(conn: sqlite3.Connection) -> None:
    """Version 3: advisories know their ecosystem (PyPI or Debian) and Debian packages can be quarantined
    and carry their release time (None for those ingested before: their age is unknown).

    Every advisory a version-2 root holds came from a PyPI dump, which is what
    the column's default says.
    """
    missing = [
        (table, column, decl)
        for table, column, decl in _ADDED_COLUMNS
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    ]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, decl in missing:
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a root written by an older version up to date.

    Version 1 had a single index; its uploads move to ``internal`` and everything
    else to ``pypi``, which is what those files would have been given today.
    """

    def missing(table: str) -> bool:
        return "index_name" not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}

    if not missing("files") and not missing("upstream_links"):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if missing("files"):
            conn.execute("ALTER TABLE files ADD COLUMN index_name TEXT NOT NULL DEFAULT 'pypi'")
            conn.execute("UPDATE files SET index_name='internal' WHERE origin LIKE 'upload:%'")
        if missing("upstream_links"):
            conn.execute("ALTER TABLE upstream_links ADD COLUMN index_name TEXT NOT NULL DEFAULT 'pypi'")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("DELETE FROM meta WHERE key='pages_format'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
