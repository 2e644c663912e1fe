"""Debian packages in the store: ingest with ``dpkg-deb`` and the ``deb_*`` events.

The control stanza is read once at ingest with Debian's own ``dpkg-deb`` and
then travels in the event, so the closed side of an air gap needs neither the
package tools nor trust in anything outside the signed manifest.

A package that breaks the site policy (a Debian advisory, see
:func:`..policy.evaluate_deb`) is quarantined like a Python file: kept and
listed with the reason, but left out of the published suite.
``deb_quarantined``/``deb_released`` are events, so bundles carry them.

A package's release time (what the minimum release age is measured from) is
the timestamp ``dpkg-deb`` wrote into the archive when the package was built:
Debian builds are reproducible, so that is the date of the changelog entry
that made the release. Debian's indexes carry no upload time, and a mirror's
``Last-Modified`` is not always there (nor the same on every mirror); the
build time is in the package itself, the same on both sides of an air gap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blobs import check_sha256
from ..errors import InvalidPackage, ReservoirConflict, ReservoirError, ReservoirNotFound
from . import control

if TYPE_CHECKING:
    from ..store import Store

EVENT_KINDS = frozenset({"deb_added", "deb_removed", "deb_quarantined", "deb_released"})
# Local state of a package: not part of what a ``deb_added`` event carries.
_STATE_FIELDS = ("status", "reason")
MAX_DEB = 4 * 1024 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class DebRecord:
    suite: str
    component: str
    filename: str
    package: str
    version: str
    architecture: str
    sha256: str
    size: int
    control: str
    origin: str
    release_time: str | None = None
    status: str = "active"
    reason: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DebRecord:
        return cls(*(row[f.name] for f in dataclasses.fields(cls)))

    def event_data(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _STATE_FIELDS}

    @property
    def source(self) -> tuple[str, str]:
        """``(source package, source version)``: what Debian advisories name.

        ``Source: name (version)`` gives both (a binNMU's binary version
        differs from its source's); a bare ``Source: name`` keeps the binary
        version; no ``Source`` means the source has the package's own name.
        """
        fields = {k.lower(): v for k, v in control.parse(self.control).items()}
        raw = fields.get("source", "").strip()
        if not raw:
            return self.package, self.version
        name, _, rest = raw.partition(" ")
        version = rest.strip().removeprefix("(").removesuffix(")").strip()
        return name, version or self.version

    @property
    def pool_path(self) -> str:
        return control.pool_path(self.component, self.package, self.filename)


def read_control(path: Path) -> str:
    """The package's control stanza, as ``dpkg-deb`` reads it (a malformed archive is refused)."""
    tool = shutil.which("dpkg-deb")
    if tool is None:
        raise ReservoirError("dpkg-deb is not installed (apt-get install dpkg)")
    result = subprocess.run([tool, "--field", str(path)], capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise InvalidPackage(f"{path.name}: not a Debian package ({result.stderr.decode(errors='replace').strip()})")
    return result.stdout.decode("utf-8", "replace")


def read_release_time(path: Path) -> str | None:
    """When the package was built: the ``ar`` header time of its first member, as ISO 8601 UTC.

    None when the header is not a valid ``ar`` member header or holds no plausible time.
    """
    with path.open("rb") as fh:
        head = fh.read(8 + 60)
    if len(head) < 68 or head[:8] != b"!<arch>\n" or head[66:68] != b"`\n":
        return None
    try:
        stamp = int(head[8 + 16 : 8 + 28].decode("ascii").strip())
    except ValueError:
        return None
    if stamp <= 0:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat().replace("+00:00", "Z")


def record_from_event(filename: str, data: dict[str, Any]) -> DebRecord:
    """Rebuild and check a record from event data (a bundle could lie about any field)."""
    try:
        text = str(data["control"])
        package, version, arch = control.check(text)
        record = DebRecord(
            suite=control.check_suite(str(data["suite"])),
            component=control.check_suite(str(data["component"])),
            filename=filename,
            package=package,
            version=version,
            architecture=arch,
            sha256=check_sha256(str(data["sha256"])),
            size=int(data["size"]),
            control=text,
            origin=str(data.get("origin") or ""),
            release_time=_release_time(data.get("release_time")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReservoirError(f"malformed deb_added event for {filename!r}: {exc}") from None
    if filename != control.pool_filename(package, version, arch) or (data.get("package"), data.get("version")) != (
        package,
        version,
    ):
        raise ReservoirError(f"deb_added event for {filename!r} does not match its control data")
    return record


def _release_time(value: Any) -> str | None:
    """A release time from an event (older events have none); anything but ISO 8601 is refused."""
    if value is None:
        return None
    try:
        dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid release_time {value!r}") from None
    return str(value)


def apply_event(conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> None:
    """The store's mutation for Debian events (inside its transaction)."""
    if filename is None:
        raise ReservoirError(f"event {kind} needs a filename")
    if kind in ("deb_quarantined", "deb_released"):
        suite = control.check_suite(str(data.get("suite")))
        if get(conn, suite, filename) is None:
            raise ReservoirNotFound(f"no package {filename!r} in suite {suite!r}")
        if kind == "deb_quarantined":
            reason = str(data.get("reason") or "quarantined")
            conn.execute(
                "UPDATE debs SET status='quarantined', reason=? WHERE suite=? AND filename=?", (reason, suite, filename)
            )
        else:
            conn.execute("UPDATE debs SET status='active', reason=NULL WHERE suite=? AND filename=?", (suite, filename))
        return
    if kind == "deb_added":
        record = record_from_event(filename, data)
        for row in conn.execute("SELECT suite, sha256 FROM debs WHERE filename=?", (filename,)):
            if row[1] != record.sha256:
                raise ReservoirConflict(
                    f"{filename} already exists (suite {row[0]}) with other content; packages are immutable"
                )
        values = record.event_data()
        cols = ", ".join(values)
        conn.execute(
            f"INSERT OR IGNORE INTO debs({cols}) VALUES ({', '.join('?' for _ in values)})", list(values.values())
        )
    else:
        suite = control.check_suite(str(data.get("suite")))
        conn.execute("DELETE FROM debs WHERE suite=? AND filename=?", (suite, filename))


def is_noop(conn: sqlite3.Connection, kind: str, filename: str | None, data: dict[str, Any]) -> bool:
    row = conn.execute(
        "SELECT sha256, status FROM debs WHERE suite=? AND filename=?", (str(data.get("suite")), filename)
    ).fetchone()
    if kind == "deb_added":
        return row is not None and row[0] == data.get("sha256")
    if kind == "deb_quarantined":
        return row is not None and row[1] == "quarantined"
    if kind == "deb_released":
        return row is not None and row[1] == "active"
    return row is None


def add_deb(
    store: Store,
    path: Path,
    suite: str,
    *,
    judge: Callable[[Store, DebRecord], str | None],
    component: str = "main",
    origin: str = "add",
) -> tuple[DebRecord, bool]:
    """Validate and store one ``.deb`` in ``suite``; ``added`` is False when the same package is already held.

    ``judge`` is the policy's verdict (:func:`cove.reservoir.policy.deb_reason`): a package it refuses is
    quarantined in the same transaction that adds it. The caller passes it in because the policy reads these
    records; importing it from here would tie the two modules into a cycle.
    """
    control.check_suite(suite)
    control.check_suite(component)
    if path.stat().st_size > MAX_DEB:
        raise InvalidPackage(f"{path.name}: larger than the limit of {MAX_DEB} bytes")
    text = read_control(path)
    package, version, arch = control.check(text)
    filename = control.pool_filename(package, version, arch)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    existing = get(store.conn, suite, filename)
    if existing is not None:
        if existing.sha256 == sha:
            return existing, False
        raise ReservoirConflict(f"{filename} already exists in {suite} with other content; packages are immutable")
    with path.open("rb") as fh:
        _, size = store.blobs.put_file(fh, expected_sha256=sha)
    record = DebRecord(
        suite, component, filename, package, version, arch, sha, size, text, origin, read_release_time(path)
    )
    with store.transaction():
        store.apply("deb_added", filename, record.event_data())
        reason = judge(store, record)
        if reason:
            store.apply("deb_quarantined", filename, {"suite": suite, "reason": reason})
    stored = get(store.conn, suite, filename)
    assert stored is not None
    return stored, True


def quarantine_deb(store: Store, suite: str, filename: str, reason: str) -> int:
    if get(store.conn, suite, filename) is None:
        raise ReservoirNotFound(f"no package {filename!r} in suite {suite!r}")
    return store.apply("deb_quarantined", filename, {"suite": suite, "reason": reason})


def release_deb(store: Store, suite: str, filename: str) -> int:
    if get(store.conn, suite, filename) is None:
        raise ReservoirNotFound(f"no package {filename!r} in suite {suite!r}")
    return store.apply("deb_released", filename, {"suite": suite})


def remove_deb(store: Store, suite: str, filename: str) -> int:
    if get(store.conn, suite, filename) is None:
        raise ReservoirNotFound(f"no package {filename!r} in suite {suite!r}")
    return store.apply("deb_removed", filename, {"suite": suite})


def get(conn: sqlite3.Connection, suite: str, filename: str) -> DebRecord | None:
    row = conn.execute("SELECT * FROM debs WHERE suite=? AND filename=?", (suite, filename)).fetchone()
    return DebRecord.from_row(row) if row else None


def listing(conn: sqlite3.Connection, suite: str | None = None, *, active_only: bool = False) -> list[DebRecord]:
    sql, args = "SELECT * FROM debs WHERE 1=1", []
    if suite is not None:
        sql += " AND suite=?"
        args.append(suite)
    if active_only:
        sql += " AND status='active'"
    rows = conn.execute(sql + " ORDER BY suite, package, version, architecture", args).fetchall()
    return [DebRecord.from_row(r) for r in rows]


def suites(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT suite FROM debs ORDER BY suite")]
