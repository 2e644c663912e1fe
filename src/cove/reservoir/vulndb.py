"""An offline vulnerability database from OSV dumps.

An operator imports an OSV ``all.zip`` (one JSON record per advisory) for the
PyPI or the Debian ecosystem; the zip is stored as a blob and announced with a
``vulndb_updated`` event, so bundles carry it to the closed side, which loads
the same records. Each ecosystem is a separate snapshot: loading a Debian dump
leaves the PyPI advisories alone.

PyPI advisories match by PEP 440 versions; ``MAL-`` records (malicious
packages) match every version they list and always block. Debian advisories
name *source* packages in a release-specific ecosystem (``Debian:12``) and
match by dpkg version ordering (:mod:`.debian.version`), because Debian
versions such as ``2.36-9+deb12u4`` or ``1.0~rc1`` are not PEP 440. The
``RPM`` ecosystem gathers the RPM distributions' advisories (OSV's ``Red Hat``,
``AlmaLinux``, ``Rocky Linux``, ``SUSE``...; an operator may load one
distribution's dump or several zipped together); they name binary packages
and match by rpm's epoch:version-release order (:mod:`.rpm.version`).
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .debian.version import DebianVersion
from .errors import ReservoirError
from .names import normalize

ECOSYSTEMS = ("PyPI", "Debian", "RPM")
# OSV ecosystems (before any ``:release``) whose advisories the ``RPM`` ecosystem loads.
RPM_DISTRIBUTIONS = frozenset(
    {"Red Hat", "AlmaLinux", "Rocky Linux", "openSUSE", "SUSE", "Mageia", "openEuler", "Azure Linux"}
)
# Debian release numbers by codename, for matching advisories of one release ("Debian:12") to a suite.
DEBIAN_RELEASES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}

MAX_RECORD = 16 * 1024 * 1024
MAX_RECORDS = 2_000_000
MAX_TOTAL = 4 * 1024 * 1024 * 1024


def check_ecosystem(ecosystem: str) -> str:
    if ecosystem not in ECOSYSTEMS:
        raise ReservoirError(f"unsupported OSV ecosystem {ecosystem!r} (one of {', '.join(ECOSYSTEMS)})")
    return ecosystem


def _in_ecosystem(declared: object, ecosystem: str) -> bool:
    """Whether an ``affected`` entry's ecosystem belongs to ``ecosystem`` (``Debian:12`` is Debian)."""
    if not isinstance(declared, str):
        return False
    if ecosystem == "RPM":
        return declared.split(":", 1)[0] in RPM_DISTRIBUTIONS
    return declared == ecosystem or (ecosystem == "Debian" and declared.startswith("Debian:"))


def _project_name(name: str, ecosystem: str) -> str:
    return normalize(name) if ecosystem == "PyPI" else name.strip().lower()


def read_zip(path: Path, ecosystem: str = "PyPI") -> list[tuple[str, str, str]]:
    """``(id, project, record JSON)`` for each advisory about a package of ``ecosystem`` in an OSV zip."""
    check_ecosystem(ecosystem)
    rows: list[tuple[str, str, str]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_RECORDS:
                raise ReservoirError(f"{path.name}: too many entries for an OSV dump")
            total = 0
            for info in infos:
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > MAX_RECORD:
                    raise ReservoirError(f"{path.name}: entry {info.filename} is too large for an OSV record")
                total += info.file_size
                if total > MAX_TOTAL:
                    raise ReservoirError(f"{path.name}: expands past {MAX_TOTAL} bytes; refusing a zip bomb")
                with zf.open(info) as fh:
                    raw = fh.read(MAX_RECORD + 1)
                if len(raw) > MAX_RECORD:
                    raise ReservoirError(f"{path.name}: entry {info.filename} expands past its declared size")
                try:
                    record = json.loads(raw)
                    vid = str(record["id"])
                except (ValueError, KeyError, TypeError):
                    raise ReservoirError(f"{path.name}: {info.filename} is not an OSV record") from None
                projects = {
                    _project_name(str(a["package"]["name"]), ecosystem)
                    for a in record.get("affected") or []
                    if isinstance(a, dict)
                    and _in_ecosystem((a.get("package") or {}).get("ecosystem"), ecosystem)
                    and (a.get("package") or {}).get("name")
                }
                compact = json.dumps(record, separators=(",", ":"))
                rows.extend((vid, project, compact) for project in sorted(projects))
    except zipfile.BadZipFile as exc:
        raise ReservoirError(f"{path.name}: not a zip file ({exc})") from None
    return rows


def load(conn: sqlite3.Connection, rows: list[tuple[str, str, str]], ecosystem: str = "PyPI") -> None:
    """Replace one ecosystem's advisories with ``rows`` (a dump is a full snapshot of its ecosystem)."""
    check_ecosystem(ecosystem)
    conn.execute("DELETE FROM vulns WHERE ecosystem=?", (ecosystem,))
    conn.executemany(
        "INSERT OR REPLACE INTO vulns(id, project, record, ecosystem) VALUES (?, ?, ?, ?)",
        [(*row, ecosystem) for row in rows],
    )


def _affected_by_ranges(version: Any, ranges: list[dict[str, Any]], parse: Callable[[str], Any] = Version) -> bool:
    """Whether ``version`` lies in one of OSV's ``ECOSYSTEM`` ranges, ordered by ``parse``'s versions."""
    for rng in ranges:
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        points: list[tuple[Any, str]] = []
        for event in rng.get("events") or []:
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                if kind in event:
                    raw = str(event[kind])
                    try:
                        points.append((parse(raw), kind))
                    except (InvalidVersion, ReservoirError):
                        continue
        affected = False
        for point, kind in sorted(points, key=lambda p: p[0]):
            if kind == "introduced":
                if version >= point:
                    affected = True
            elif version > point or (version == point and kind != "last_affected"):
                affected = False  # at or past a fix or limit, or past the last affected version
        if affected:
            return True
    return False


def matches(conn: sqlite3.Connection, project: str, version: str) -> list[dict[str, Any]]:
    """The advisories that affect ``project`` at ``version``, as ``{"id", "summary", "malicious"}``."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    found = []
    rows = conn.execute("SELECT id, record FROM vulns WHERE project=? AND ecosystem='PyPI'", (project,)).fetchall()
    for vid, raw in rows:
        record = json.loads(raw)
        if record.get("withdrawn"):
            continue
        if any(_affects(a, project, version, parsed) for a in record.get("affected") or []):
            found.append({"id": vid, "summary": record.get("summary") or "", "malicious": vid.startswith("MAL-")})
    return found


def _affects(affected: dict[str, Any], project: str, version: str, parsed: Version | None) -> bool:
    package = affected.get("package") or {}
    if package.get("ecosystem") != "PyPI" or normalize(str(package.get("name", ""))) != project:
        return False
    listed = {str(v) for v in affected.get("versions") or []}
    if version in listed or (parsed is not None and any(_same(parsed, v) for v in listed)):
        return True
    return parsed is not None and _affected_by_ranges(parsed, affected.get("ranges") or [])


def _same(version: Version, text: str) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def matches_deb(conn: sqlite3.Connection, source: str, version: str, suite: str) -> list[dict[str, Any]]:
    """The Debian advisories that affect source package ``source`` at ``version`` in ``suite``.

    A known codename matches only its own release's advisories (``Debian:12``
    for bookworm); a suite with another name matches every release's, since
    holding back a package wrongly is safer than serving a vulnerable one.
    """
    try:
        parsed = DebianVersion(version)
    except ReservoirError:
        return []
    release = DEBIAN_RELEASES.get(suite)
    found = []
    sql = "SELECT id, record FROM vulns WHERE project=? AND ecosystem='Debian'"
    for vid, raw in conn.execute(sql, (source.lower(),)).fetchall():
        record = json.loads(raw)
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected") or []:
            package = affected.get("package") or {}
            declared = package.get("ecosystem")
            if not _in_ecosystem(declared, "Debian") or str(package.get("name", "")).lower() != source.lower():
                continue
            if release is not None and declared not in ("Debian", f"Debian:{release}"):
                continue
            listed = [v for v in affected.get("versions") or [] if _same_deb(parsed, str(v))]
            if listed or _affected_by_ranges(parsed, affected.get("ranges") or [], DebianVersion):
                found.append({"id": vid, "summary": record.get("summary") or "", "malicious": vid.startswith("MAL-")})
                break
    return found


def _same_deb(version: DebianVersion, text: str) -> bool:
    try:
        return DebianVersion(text) == version
    except ReservoirError:
        return False


def matches_rpm(conn: sqlite3.Connection, name: str, evr: str) -> list[dict[str, Any]]:
    """The advisories of RPM distributions that affect binary package ``name`` at ``evr``.

    The reservoir does not know which distribution a repository's packages
    were built for, so every loaded distribution's advisories apply: holding
    back a package wrongly is safer than serving a vulnerable one.
    """
    from .rpm.version import Evr

    try:
        parsed = Evr.parse(evr)
    except ReservoirError:
        return []
    found = []
    sql = "SELECT id, record FROM vulns WHERE project=? AND ecosystem='RPM'"
    for vid, raw in conn.execute(sql, (name.lower(),)).fetchall():
        record = json.loads(raw)
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected") or []:
            package = affected.get("package") or {}
            same_name = str(package.get("name", "")).lower() == name.lower()
            if not same_name or not _in_ecosystem(package.get("ecosystem"), "RPM"):
                continue
            listed = any(_same_rpm(parsed, str(v)) for v in affected.get("versions") or [])
            if listed or _affected_by_ranges(parsed, affected.get("ranges") or [], Evr.parse):
                found.append({"id": vid, "summary": record.get("summary") or "", "malicious": vid.startswith("MAL-")})
                break
    return found


def _same_rpm(version: Any, text: str) -> bool:
    from .rpm.version import Evr

    try:
        return bool(Evr.parse(text) == version)
    except ReservoirError:
        return False


def count(conn: sqlite3.Connection, ecosystem: str | None = None) -> int:
    if ecosystem is None:
        return int(conn.execute("SELECT COUNT(DISTINCT id) FROM vulns").fetchone()[0])
    return int(conn.execute("SELECT COUNT(DISTINCT id) FROM vulns WHERE ecosystem=?", (ecosystem,)).fetchone()[0])
