"""An offline vulnerability database from OSV dumps.

An operator imports an OSV ``all.zip`` (one JSON record per advisory) for the
PyPI ecosystem; the zip is stored as a blob and announced with a
``vulndb_updated`` event, so bundles carry it to the closed side, which loads
the same records. Matching uses PEP 440 versions; ``MAL-`` records (malicious
packages) match every version they list and always block.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .errors import ReservoirError
from .names import normalize

MAX_RECORD = 16 * 1024 * 1024
MAX_RECORDS = 2_000_000
MAX_TOTAL = 4 * 1024 * 1024 * 1024


def read_zip(path: Path, ecosystem: str = "PyPI") -> list[tuple[str, str, str]]:
    """``(id, project, record JSON)`` for each advisory about a package of ``ecosystem`` in an OSV zip."""
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
                    normalize(str(a["package"]["name"]))
                    for a in record.get("affected") or []
                    if isinstance(a, dict)
                    and (a.get("package") or {}).get("ecosystem") == ecosystem
                    and (a.get("package") or {}).get("name")
                }
                compact = json.dumps(record, separators=(",", ":"))
                rows.extend((vid, project, compact) for project in sorted(projects))
    except zipfile.BadZipFile as exc:
        raise ReservoirError(f"{path.name}: not a zip file ({exc})") from None
    return rows


def load(conn: sqlite3.Connection, rows: list[tuple[str, str, str]]) -> None:
    """Replace the database with ``rows`` (a dump is a full snapshot)."""
    conn.execute("DELETE FROM vulns")
    conn.executemany("INSERT OR REPLACE INTO vulns(id, project, record) VALUES (?, ?, ?)", rows)


def _affected_by_ranges(version: Version, ranges: list[dict[str, Any]]) -> bool:
    for rng in ranges:
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        points: list[tuple[Version, str]] = []
        for event in rng.get("events") or []:
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                if kind in event:
                    raw = str(event[kind])
                    try:
                        points.append((Version("0") if raw == "0" else Version(raw), kind))
                    except InvalidVersion:
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
    for vid, raw in conn.execute("SELECT id, record FROM vulns WHERE project=?", (project,)).fetchall():
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


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(DISTINCT id) FROM vulns").fetchone()[0])
