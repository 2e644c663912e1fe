"""Imports held for review: a bundle verified and stored, but applied only when an operator approves it.

A site that reviews every update before it enters (``cove reservoir import
--hold``, or a watch folder with ``--hold``) gets the bundle checked exactly
like a normal import (signature, serials, every chunk and blob), its blobs
stored (content-addressed, so invisible until an event names them; ``gc``
keeps them while the import waits), and its events kept in ``held_imports``.
``review show`` judges the changes by this site's own policy and advisories;
``approve`` replays the events in the same single transaction a normal import
uses; ``reject`` deletes the blobs nothing else needs and keeps only the
decision (who came, what it held, when it was refused) as the audit entry.

One import per source site waits at a time: the next bundle of that site
starts where the held one ends, so it cannot be judged before that one is
decided.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from .errors import BundleError, ReservoirConflict, ReservoirNotFound
from .held import HELD

if TYPE_CHECKING:
    from .store import Store

APPROVED, REJECTED = "approved", "rejected"


def listing(store: Store, *, everything: bool = False) -> list[dict[str, Any]]:
    """Held imports (with ``everything``, also the decided ones: the audit trail)."""
    sql = "SELECT * FROM held_imports" + ("" if everything else " WHERE status='held'") + " ORDER BY id"
    return [_brief(row) for row in store.conn.execute(sql)]


def show(store: Store, review_id: int) -> dict[str, Any]:
    """One held import with every change it would make and its findings under this site's policy."""
    row = _get(store.conn, review_id)
    events = json.loads(row["events"])
    return _brief(row) | {"changes": [_finding(store, e) for e in events]}


def approve(store: Store, review_id: int, note: str | None = None) -> dict[str, Any]:
    """Apply a held import atomically: every event and the decision commit together, or nothing does."""
    from .bundle import ImportReport, apply_events, needed_blobs, republish, source_serial

    with store.transaction() as conn:
        row = _decidable(conn, review_id)
        source_id, base, target = str(row["source_id"]), int(row["base_serial"]), int(row["target_serial"])
        have = source_serial(store, source_id)
        if base > have:
            raise BundleError(
                f"held import #{review_id} starts at serial {base} of site {source_id}, but this site holds "
                f"that site's history only up to serial {have}"
            )
        events = [e for e in json.loads(row["events"]) if int(e["serial"]) > have]
        missing = [sha for sha in needed_blobs(events) if not store.blobs.has(sha)]
        if missing:
            raise BundleError(
                f"held import #{review_id} needs blob {missing[0]}, which is no longer stored; reject it and "
                "import the bundle again"
            )
        apply_events(store, source_id, target, events, base=base, name=row["bundle"])
        _decide(conn, review_id, APPROVED, note)
    report = ImportReport(source_id, base, target, applied_events=len(events), local_serial=store.serial())
    republish(store, events, report)
    return _brief(_get(store.conn, review_id)) | {"import": report.to_json()}


def reject(store: Store, review_id: int, note: str | None = None) -> dict[str, Any]:
    """Drop a held import: nothing of it is applied, its blobs go unless something else needs them."""
    from .gc import referenced

    with store.transaction() as conn:
        row = _decidable(conn, review_id)
        blobs = json.loads(row["blobs"])
        _decide(conn, review_id, REJECTED, note)
    keep = referenced(store)
    deleted = 0
    for sha in blobs:
        if sha not in keep and store.blobs.has(sha):
            store.blobs.path(sha).unlink(missing_ok=True)
            deleted += 1
    return _brief(_get(store.conn, review_id)) | {"blobs_deleted": deleted}


# -- helpers ---------------------------------------------------------------------------------------------------


def _now() -> str:
    from .store import utcnow

    return utcnow()


def _get(conn: sqlite3.Connection, review_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM held_imports WHERE id=?", (review_id,)).fetchone()
    if row is None:
        raise ReservoirNotFound(f"no held import #{review_id} (see `cove reservoir review list --all`)")
    return row


def _decidable(conn: sqlite3.Connection, review_id: int) -> sqlite3.Row:
    row = _get(conn, review_id)
    if row["status"] != HELD:
        raise ReservoirConflict(f"import #{review_id} was already {row['status']} on {row['decided']}")
    return row


def _decide(conn: sqlite3.Connection, review_id: int, status: str, note: str | None) -> None:
    """Record the decision; the events leave the table (approved: they are in the event log; rejected: gone)."""
    conn.execute(
        "UPDATE held_imports SET status=?, decided=?, note=?, events='[]', blobs='[]' WHERE id=?",
        (status, _now(), note, review_id),
    )


def _brief(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "source_id": row["source_id"],
        "base_serial": int(row["base_serial"]),
        "target_serial": int(row["target_serial"]),
        "bundle": row["bundle"],
        "created": row["created"],
        "status": row["status"],
        "decided": row["decided"],
        "note": row["note"],
        "summary": json.loads(row["summary"]),
    }


def _finding(store: Store, event: dict[str, Any]) -> dict[str, Any]:
    """What one held event changes, with the license and advisories this site's policy sees for it."""
    from . import policy
    from .debian import records
    from .store import _record_from_event

    kind, filename, data = event["kind"], event.get("filename"), event.get("data") or {}
    out: dict[str, Any] = {"serial": int(event["serial"]), "kind": kind, "filename": filename}
    if kind == "file_added" and filename:
        record = _record_from_event(filename, data)
        verdict = policy.evaluate(store, policy.current(store), record)
        out |= {
            "project": record.project,
            "version": record.version,
            "index": record.index,
            "license": verdict.license.expression,
            "license_source": verdict.license.source,
            "advisories": [v["id"] for v in verdict.vulnerabilities],
            "policy": verdict.reasons,
        }
    elif kind == "deb_added" and filename:
        deb = records.record_from_event(filename, data)
        vulns, reasons = policy.evaluate_deb(store, policy.current(store), deb)
        out |= {
            "package": deb.package,
            "version": deb.version,
            "suite": deb.suite,
            "advisories": [v["id"] for v in vulns],
            "policy": reasons,
        }
    elif kind == "cran_added" and filename:
        from .cran import description
        from .cran import records as cran_records

        package = cran_records.record_from_event(store.blobs, filename, data)
        license_field = package.fields.get("License", "")
        out |= {
            "package": package.package,
            "version": package.version,
            "license": description.spdx_license(license_field) or license_field,
            "advisories": [],
            "policy": policy.evaluate_cran(store, policy.current(store), package),
        }
    elif kind == "rpm_added" and filename:
        from .rpm import records as rpm_records
        from .rpm.licenses import spdx_license

        rpm = rpm_records.record_from_event(store.blobs, filename, data)
        vulns, reasons = policy.evaluate_rpm(store, policy.current(store), rpm)
        out |= {
            "package": rpm.header.name,
            "version": rpm.header.evr,
            "repo": rpm.repo,
            "license": spdx_license(rpm.header.license) or rpm.header.license,
            "advisories": [v["id"] for v in vulns],
            "policy": reasons,
        }
    elif kind in ("quarantined", "yanked", "deb_quarantined", "cran_quarantined", "rpm_quarantined"):
        out["reason"] = data.get("reason")
    elif kind in ("claimed", "unclaimed", "index_created"):
        out |= {k: data.get(k) for k in ("project", "index", "name", "kind") if data.get(k) is not None}
    elif kind == "vulndb_updated":
        out["ecosystem"] = data.get("ecosystem") or "PyPI"
    return out
