"""How severe an advisory is, on one scale for every ecosystem: low, medium, high, critical.

OSV records say it in different ways: a CVSS vector in ``severity`` (v2, v3
or v4; the score is computed here with the ``cvss`` library, never taken on
trust from a text), or a word in ``database_specific.severity`` (GitHub's
``LOW``/``MODERATE``/``HIGH``/``CRITICAL``). A vector wins over the word
because it is what the word is derived from. ``MAL-`` records (malicious
packages) are critical whatever they say. Many records (most of Debian's
DSAs, many PYSECs) say nothing: their severity is None, and what that means
is the policy's choice (``[deploy] unknown_severity``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import cvss

LEVELS = ("low", "medium", "high", "critical")
# GitHub's words (MODERATE), and Red Hat's and SUSE's (IMPORTANT), on this scale.
_WORDS = {
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}
_CVSS = {"CVSS_V2": cvss.CVSS2, "CVSS_V3": cvss.CVSS3, "CVSS_V4": cvss.CVSS4}


def rank(level: str) -> int:
    """The position of ``level`` on the scale (low 0 … critical 3)."""
    return LEVELS.index(level)


def from_score(score: float) -> str | None:
    """The CVSS qualitative rating of a base score (0.0 is "none": no severity)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else None


def of_record(vid: str, record: Mapping[str, Any]) -> str | None:
    """The severity of one OSV record, or None when it gives none that can be read."""
    if vid.startswith("MAL-"):
        return "critical"
    scores = [s for s in (_cvss_score(entry) for entry in _list(record.get("severity"))) if s is not None]
    for affected in _list(record.get("affected")):
        scores += [s for s in (_cvss_score(entry) for entry in _list(affected.get("severity"))) if s is not None]
    if scores:
        return from_score(max(scores))
    words = [_word(record.get("database_specific"))]
    words += [_word(a.get("ecosystem_specific")) for a in _list(record.get("affected"))]
    known = [w for w in words if w is not None]
    return max(known, key=rank) if known else None


def of_ids(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, str | None]:
    """``{advisory id: severity}`` for advisories loaded in the vulnerability database."""
    found: dict[str, str | None] = {}
    for vid in dict.fromkeys(ids):
        row = conn.execute("SELECT record FROM vulns WHERE id=? LIMIT 1", (vid,)).fetchone()
        found[vid] = of_record(vid, json.loads(row[0])) if row else ("critical" if vid.startswith("MAL-") else None)
    return found


def _cvss_score(entry: Mapping[str, Any]) -> float | None:
    kind = _CVSS.get(str(entry.get("type", "")))
    vector = entry.get("score")
    if kind is None or not isinstance(vector, str):
        return None
    try:
        parsed = kind(vector)
    except (cvss.CVSSError, ValueError, KeyError, IndexError):
        return None
    score = parsed.base_score
    return float(score) if score is not None else None


def _word(section: object) -> str | None:
    if not isinstance(section, Mapping):
        return None
    value = section.get("severity")
    return _WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def _list(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
