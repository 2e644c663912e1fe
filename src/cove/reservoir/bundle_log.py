"""The bundles this site exported and imported, with their serials: what crossed the air gap, and when.

A row is written in the same transaction that applies an import's events
(so "imported" means applied, never half), and after an export's files are
complete. Held imports are listed by :mod:`.review` until they are approved;
their approval writes the import row here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS bundle_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL,
    site_id TEXT NOT NULL,
    base_serial INTEGER NOT NULL,
    target_serial INTEGER NOT NULL,
    events INTEGER NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
"""

EXPORTED = "export"
IMPORTED = "import"


def record(
    conn: sqlite3.Connection, direction: str, site_id: str, serials: tuple[int, int], events: int, name: str, at: str
) -> None:
    """One bundle that left (``site_id`` is this site) or was applied here (``site_id`` is where it came from)."""
    conn.execute(
        "INSERT INTO bundle_log(direction, site_id, base_serial, target_serial, events, name, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (direction, site_id, *serials, events, name, at),
    )


def recent(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` bundles, newest first."""
    rows = conn.execute(
        "SELECT id, direction, site_id, base_serial, target_serial, events, name, created FROM bundle_log"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    keys = ("id", "direction", "site_id", "base_serial", "target_serial", "events", "name", "created")
    return [dict(zip(keys, tuple(row), strict=True)) for row in rows]
