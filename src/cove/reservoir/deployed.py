"""Re-audit of what is deployed: the packages of built images against today's advisories and policy.

Cove records the package set of every image it builds (Python distributions
with their license fields, and the Debian packages of its system root). When
an import brings new advisories or a changed policy, this judges those sets
by the same rules the reservoir applies to what it serves, so an operator
learns which deployments run a package that is now flagged, without a
rebuild. The minimum release age is left out: it guards what enters, not
what already runs.

Input and output are plain dicts (the manifest format written by the image
builder), so the reservoir stays free of the rest of Cove.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from . import licenses, severity, vulndb
from .names import normalize
from .policy import Policy, current

if TYPE_CHECKING:
    from .store import Store

RULE_EVENTS = ("policy_updated", "vulndb_updated")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One package of an image that breaks the policy or has advisories."""

    ecosystem: str  # "PyPI" or "Debian"
    name: str
    version: str
    advisories: tuple[str, ...]
    reasons: tuple[str, ...]
    license: str | None = None
    severity: str | None = None  # the highest of its advisories' severities (None: none given, or no advisory)

    def to_json(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem,
            "name": self.name,
            "version": self.version,
            "advisories": list(self.advisories),
            "reasons": list(self.reasons),
            "license": self.license,
            "severity": self.severity,
        }


def rules_serial(store: Store) -> int:
    """The serial of the newest policy or advisory change (0: none yet): what a finding was judged by."""
    marks = ",".join("?" * len(RULE_EVENTS))
    row = store.conn.execute(f"SELECT MAX(serial) FROM events WHERE kind IN ({marks})", RULE_EVENTS).fetchone()
    return int(row[0] or 0)


def _advisory_reasons(vulns: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, ...], list[str]]:
    ids = tuple(str(v["id"]) for v in vulns)
    reasons = [f"{'malicious package' if v['malicious'] else 'vulnerable'} ({v['id']})" for v in vulns]
    return ids, reasons


def judge_python(store: Store, policy: Policy, entry: Mapping[str, Any]) -> Finding | None:
    """A Python distribution as installed: advisories, license policy and block rules."""
    name, version = str(entry.get("name", "")), str(entry.get("version", ""))
    if not name or not version:
        return None
    project = normalize(name)
    classifiers = entry.get("classifiers") or []
    lic = licenses.detect(
        _opt(entry.get("license_expression")),
        _opt(entry.get("license")),
        [str(c) for c in classifiers] if isinstance(classifiers, list) else [],
    )
    reasons: list[str] = []
    if lic.expression is None:
        if policy.unknown_license == "quarantine":
            reasons.append("license unknown (needs review)")
    elif policy.allow or policy.deny:
        verdict = licenses.judge(lic.expression, policy.allow, policy.deny)
        if verdict:
            reasons.append(verdict)
    ids, vuln_reasons = _advisory_reasons(vulndb.matches(store.conn, project, version))
    reasons += vuln_reasons
    try:
        parsed: Version | None = Version(version)
    except InvalidVersion:
        parsed = None
    for req in policy.block:
        if normalize(req.name) == project and (
            not req.specifier or (parsed is not None and req.specifier.contains(parsed, prereleases=True))
        ):
            reasons.append(f"blocked by rule {str(req)!r}")
    if not reasons:
        return None
    return Finding("PyPI", name, version, ids, tuple(reasons), lic.expression, _highest(store, ids))


def judge_debian(store: Store, policy: Policy, entry: Mapping[str, Any], suite: str) -> Finding | None:
    """An installed Debian package: its source's advisories for ``suite`` and the ``[block] debian`` rules."""
    package, version = str(entry.get("package", "")), str(entry.get("version", ""))
    if not package or not version:
        return None
    source = str(entry.get("source") or package)
    source_version = str(entry.get("source_version") or version)
    ids, reasons = _advisory_reasons(vulndb.matches_deb(store.conn, source, source_version, suite))
    for rule in policy.block_debian:
        if rule.blocks(package, version) or rule.blocks(source, source_version):
            reasons.append(f"blocked by rule {rule.text!r}")
    if not reasons:
        return None
    return Finding("Debian", package, version, ids, tuple(reasons), severity=_highest(store, ids))


def _highest(store: Store, ids: Sequence[str]) -> str | None:
    known = [level for level in severity.of_ids(store.conn, ids).values() if level is not None]
    return max(known, key=severity.rank) if known else None


def deploy_blockers(store: Store, manifest: Mapping[str, Any]) -> list[Finding]:
    """The packages of an image that the policy's ``[deploy]`` section refuses to deploy (none when it is off).

    Only advisories count here, at or above ``block_severity`` (an advisory
    without a severity counts unless ``unknown_severity = "allow"``); each
    finding keeps only the advisories that block, so a refusal names them.
    """
    policy = current(store)
    if policy.deploy_block == "off":
        return []
    floor = severity.rank(policy.deploy_block)
    blockers = []
    for finding in judge_manifest(store, manifest, policy):
        levels = severity.of_ids(store.conn, finding.advisories)
        ids = tuple(
            vid
            for vid, level in levels.items()
            if (severity.rank(level) >= floor if level is not None else policy.deploy_unknown == "block")
        )
        if ids:
            blockers.append(dataclasses.replace(finding, advisories=ids))
    return blockers


def judge_manifest(store: Store, manifest: Mapping[str, Any], policy: Policy | None = None) -> list[Finding]:
    """Every flagged package of one image's package manifest."""
    policy = policy or current(store)
    found = []
    for entry in _entries(manifest.get("python")):
        finding = judge_python(store, policy, entry)
        if finding is not None:
            found.append(finding)
    debian = manifest.get("debian")
    if isinstance(debian, Mapping):
        suite = str(debian.get("suite") or "")
        for entry in _entries(debian.get("packages")):
            finding = judge_debian(store, policy, entry, suite)
            if finding is not None:
                found.append(finding)
    return found


def audit_images(store: Store, images: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Judge deployed images. Each item: ``{"image_id", "packages": manifest or None, "deployments": [...]}``.

    Returns the images with findings (their deployments passed through), the
    images that have no manifest (not judged), and ``rules_serial``.
    """
    policy = current(store)
    flagged, unknown, checked = [], [], 0
    for image in images:
        manifest = image.get("packages")
        if not isinstance(manifest, Mapping):
            unknown.append({"image_id": image.get("image_id"), "deployments": image.get("deployments", [])})
            continue
        checked += 1
        findings = judge_manifest(store, manifest, policy)
        if findings:
            flagged.append(
                {
                    "image_id": image.get("image_id"),
                    "deployments": image.get("deployments", []),
                    "findings": [f.to_json() for f in findings],
                }
            )
    return {
        "rules_serial": rules_serial(store),
        "advisories": vulndb.count(store.conn),
        "checked_images": checked,
        "flagged": flagged,
        "unknown": unknown,
    }


def _entries(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _opt(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None
