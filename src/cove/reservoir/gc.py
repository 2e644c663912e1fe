"""``cove reservoir gc``: delete blobs nothing refers to, and pool files no package publishes.

Blobs become unreferenced when an ingest stored the bytes but never committed
its event (a refused upload, a conflicting add, an import interrupted before
its transaction, an OSV dump that failed to load). What any event refers to
is kept, removed Python files included: ``export --since 0`` replays the
whole history and needs every blob it names.

Debian packages are different: a suite is replaced wholesale by the next
sync, so removed ``.deb`` files would pile up. Their blobs are kept only while
some suite holds the package (published, or quarantined and waiting for a
decision); once removed, the blob goes, and an export leaves out the blob of
an add that a later removal in the same bundle undoes (see
:func:`.bundle.superseded_debs`).

A blob is written before the event that refers to it commits, so a blob that
looks unreferenced may belong to an ingest still in flight; only blobs older
than ``grace`` seconds are deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import referenced_blobs, superseded_debs

if TYPE_CHECKING:
    from .store import Store

DEFAULT_GRACE = 3600.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass
class GcReport:
    blobs_kept: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    too_recent: int = 0
    pool_files_deleted: int = 0
    debian_blobs_deleted: int = 0
    dry_run: bool = False
    deleted: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def referenced(store: Store) -> set[str]:
    """Every blob the current state or an event of the history needs (Debian: only packages a suite holds)."""
    conn = store.conn
    keep: set[str] = set()
    events = [
        {"kind": row[0], "filename": row[1], "data": json.loads(row[2])}
        for row in conn.execute("SELECT kind, filename, data FROM events ORDER BY serial")
    ]
    skip = superseded_debs(events)
    for position, event in enumerate(events):
        if position not in skip:
            keep.update(referenced_blobs(event))
    for row in conn.execute("SELECT sha256, metadata_sha256 FROM files"):
        keep.update(sha for sha in row if sha)
    keep.update(row[0] for row in conn.execute("SELECT sha256 FROM debs"))
    for row in conn.execute("SELECT blobs FROM held_imports WHERE status='held'"):
        keep.update(json.loads(row[0]))  # imports waiting for review (see .review)
    return keep


def _blob_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.glob("??/??/*") if _HEX64.match(p.name) and p.parent.parent.parent == root]


def collect(store: Store, *, grace: float = DEFAULT_GRACE, dry_run: bool = False, now: float | None = None) -> GcReport:
    """Delete unreferenced blobs older than ``grace`` seconds (report only with ``dry_run``)."""
    report = GcReport(dry_run=dry_run)
    keep = referenced(store)
    debian = _removed_deb_blobs(store) - keep
    cutoff = (now if now is not None else time.time()) - grace
    for path in _blob_files(store.blobs.root):
        if path.name in keep:
            report.blobs_kept += 1
            continue
        st = path.lstat()
        if st.st_mtime > cutoff:
            report.too_recent += 1
            continue
        report.blobs_deleted += 1
        report.debian_blobs_deleted += path.name in debian
        report.bytes_freed += st.st_size
        report.deleted.append(path.name)
        if not dry_run:
            path.unlink(missing_ok=True)
            for folder in (path.parent, path.parent.parent):
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
    report.pool_files_deleted = _prune_pool(store, dry_run)
    return report


def _removed_deb_blobs(store: Store) -> set[str]:
    """Blobs of Debian packages that some event added (whether or not anything holds them now)."""
    rows = store.conn.execute("SELECT data FROM events WHERE kind='deb_added'")
    return {str(json.loads(row[0]).get("sha256")) for row in rows}


def _prune_pool(store: Store, dry_run: bool) -> int:
    """Pool files of packages no suite holds any more (removed ones); quarantined ones are unlinked on publish."""
    from .debian import records

    pool = store.layout.debian / "pool"
    if not pool.is_dir():
        return 0
    held = {deb.pool_path for deb in records.listing(store.conn)}
    count = 0
    for path in pool.rglob("*.deb"):
        if path.is_symlink() or not path.is_file():
            continue
        if path.relative_to(store.layout.debian).as_posix() not in held:
            count += 1
            if not dry_run:
                os.unlink(path)
    return count
