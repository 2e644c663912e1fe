"""The ``held_imports`` table's side that a bundle import needs: is a source's import waiting, hold one.

Apart from :mod:`.review` (which decides held imports and so needs
:mod:`.bundle`) so that :mod:`.bundle` can refuse to skip a pending decision
without importing the module that imports it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

from .errors import BundleError, ReservoirConflict

if TYPE_CHECKING:
    from .store import Store

HELD = "held"


def pending(conn: sqlite3.Connection, source_id: str) -> sqlite3.Row | None:
    """The import of ``source_id`` waiting for a decision, if any."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM held_imports WHERE source_id=? AND status=? ORDER BY id LIMIT 1", (source_id, HELD)
    ).fetchone()
    return row


def check_not_pending(store: Store, source_id: str, target: int) -> None:
    """Refuse a bundle of a site whose earlier import still waits for review (it would skip the decision)."""
    row = pending(store.conn, source_id)
    if row is None:
        return
    if target <= int(row["target_serial"]):
        raise ReservoirConflict(
            f"this bundle (up to serial {target} of site {source_id}) is already held for review as "
            f"#{row['id']}; decide it with `cove reservoir review approve|reject {row['id']}`"
        )
    raise BundleError(
        f"an import of site {source_id} is held for review (#{row['id']}, serials {row['base_serial']}.."
        f"{row['target_serial']}); approve or reject it before importing the bundles that follow it"
    )


def hold(store: Store, manifest: dict[str, Any], events: list[dict[str, Any]], blobs: list[str], bundle: str) -> int:
    """Record a verified bundle's events for review; return the review id."""
    summary = {"events": len(events), "kinds": dict(Counter(e["kind"] for e in events))}
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO held_imports(source_id, base_serial, target_serial, bundle, created, summary, events, blobs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(manifest["source_id"]),
                int(manifest["base_serial"]),
                int(manifest["target_serial"]),
                bundle,
                _now(),
                json.dumps(summary, sort_keys=True),
                json.dumps(events, sort_keys=True),
                json.dumps(blobs),
            ),
        )
        return int(cur.lastrowid or 0)


def _now() -> str:
    from .store import utcnow

    return utcnow()
