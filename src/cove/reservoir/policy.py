"""Site policy: licenses, vulnerabilities, block list and minimum release age.

The policy is TOML kept in the database (set with ``cove reservoir policy
set FILE``) and changed only through a ``policy_updated`` event, so bundles
carry it and both sides judge files by the same rules. A file that breaks a
rule is quarantined with the reason (prefixed ``policy:``), never dropped;
``audit`` re-judges the whole store and releases files that pass again.
Operator quarantines (other reasons) are left alone.

Example::

    [licenses]
    allow = ["MIT", "BSD-3-Clause", "Apache-2.0"]   # empty: anything not denied
    deny = ["AGPL-3.0-only"]
    unknown = "allow"                                 # or "quarantine"

    [vulnerabilities]
    action = "quarantine"                             # or "report"; MAL- records always quarantine

    [block]
    requirements = ["evil-package", "urllib3<1.26.5"]
    debian = ["telnetd", "openssl (<< 3.0.15-1~deb12u1)"]  # Debian packages, dpkg version rules

    [age]
    minimum_days = 3
    unknown = "allow"                                 # files without an upstream upload time

    [deploy]
    block_severity = "high"                           # or "off" (default), "low", "medium", "critical"
    unknown_severity = "block"                        # advisories without a severity; or "allow"

Debian packages are judged by the advisories, the ``[block] debian`` rules
(a binary or source package name, optionally with one dpkg relation:
``<<``, ``<=``, ``=``, ``>=``, ``>>``) and the minimum age, measured from the
release time recorded at ingest (see ``debian.records``). Licenses are a PyPI
notion (SPDX metadata) that Debian packages do not carry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from . import licenses, severity, vulndb
from .debian import publish, records
from .debian.version import DebianVersion
from .errors import ReservoirError
from .names import normalize

if TYPE_CHECKING:
    from .cran.records import CranRecord
    from .debian.records import DebRecord
    from .rpm.records import RpmRecord
    from .store import FileRecord, Store

PREFIX = "policy: "
_DEB_RULE = re.compile(r"^([a-z0-9][a-z0-9+.-]+)\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^()\s]+)\s*\))?$")
_DEB_OPS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
}


@dataclasses.dataclass(frozen=True)
class DebRule:
    """One ``[block] debian`` entry: a package name and an optional dpkg relation."""

    text: str
    name: str
    op: str | None = None
    version: DebianVersion | None = None

    @classmethod
    def parse(cls, text: str) -> DebRule:
        match = _DEB_RULE.match(text.strip())
        if not match:
            raise ReservoirError(
                f"policy: invalid Debian block rule {text!r} (write a package name, optionally with a relation "
                "such as 'openssl (<< 3.0.15-1)')"
            )
        name, op, version = match.groups()
        return cls(text.strip(), name, op, DebianVersion(version) if version else None)

    def blocks(self, name: str, version: str) -> bool:
        if name != self.name:
            return False
        if self.op is None or self.version is None:
            return True
        try:
            held = DebianVersion(version)
        except ReservoirError:
            return False
        return bool(_DEB_OPS[self.op](held.compare(self.version)))


@dataclasses.dataclass(frozen=True)
class Policy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    unknown_license: str = "allow"
    vulnerabilities: str = "quarantine"
    block: tuple[Requirement, ...] = ()
    minimum_age_days: float = 0.0
    unknown_age: str = "allow"
    block_debian: tuple[DebRule, ...] = ()
    # [deploy]: refuse new deploys of images holding a package with an advisory this severe or worse.
    deploy_block: str = "off"
    deploy_unknown: str = "block"  # advisories that give no severity count as severe enough

    @classmethod
    def parse(cls, text: str) -> Policy:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ReservoirError(f"policy is not valid TOML: {exc}") from None
        known = {
            "licenses": {"allow", "deny", "unknown"},
            "vulnerabilities": {"action"},
            "block": {"requirements", "debian"},
            "age": {"minimum_days", "unknown"},
            "deploy": {"block_severity", "unknown_severity"},
        }
        for section, values in doc.items():
            if section not in known or not isinstance(values, dict):
                raise ReservoirError(f"policy: unknown section [{section}]")
            for key in values:
                if key not in known[section]:
                    raise ReservoirError(f"policy: unknown key {key!r} in [{section}]")
        lic, vul, blk, age = (doc.get(s, {}) for s in ("licenses", "vulnerabilities", "block", "age"))
        for section, name, value in (
            ("licenses", "allow", lic.get("allow", [])),
            ("licenses", "deny", lic.get("deny", [])),
            ("block", "requirements", blk.get("requirements", [])),
            ("block", "debian", blk.get("debian", [])),
        ):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ReservoirError(f"policy: [{section}] {name} must be a list of strings")
        for expr in [*lic.get("allow", []), *lic.get("deny", [])]:
            if licenses.judge(expr, [], []) is not None:
                raise ReservoirError(f"policy: {expr!r} is not an SPDX license identifier")
        _choice(lic.get("unknown", "allow"), ("allow", "quarantine"), "[licenses] unknown")
        _choice(vul.get("action", "quarantine"), ("quarantine", "report"), "[vulnerabilities] action")
        _choice(age.get("unknown", "allow"), ("allow", "quarantine"), "[age] unknown")
        deploy = doc.get("deploy", {})
        _choice(deploy.get("block_severity", "off"), ("off", *severity.LEVELS), "[deploy] block_severity")
        _choice(deploy.get("unknown_severity", "block"), ("block", "allow"), "[deploy] unknown_severity")
        try:
            block = tuple(Requirement(r) for r in blk.get("requirements", []))
        except InvalidRequirement as exc:
            raise ReservoirError(f"policy: invalid block requirement: {exc}") from None
        days = age.get("minimum_days", 0)
        if not isinstance(days, int | float) or days < 0:
            raise ReservoirError("policy: [age] minimum_days must be a number >= 0")
        return cls(
            tuple(lic.get("allow", [])),
            tuple(lic.get("deny", [])),
            lic.get("unknown", "allow"),
            vul.get("action", "quarantine"),
            block,
            float(days),
            age.get("unknown", "allow"),
            tuple(DebRule.parse(r) for r in blk.get("debian", [])),
            deploy.get("block_severity", "off"),
            deploy.get("unknown_severity", "block"),
        )


def _choice(value: object, options: tuple[str, ...], where: str) -> None:
    if value not in options:
        raise ReservoirError(f"policy: {where} must be one of {', '.join(options)}")


def current(store: Store) -> Policy:
    text = store.get_meta("policy")
    return Policy.parse(text) if text else Policy()


def set_policy(store: Store, path: Path) -> int:
    """Validate and install a policy file; return the event serial."""
    if not path.is_file():
        raise ReservoirError(f"{path}: no such file")
    text = path.read_text()
    Policy.parse(text)
    return store.apply("policy_updated", None, {"text": text})


def import_vulndb(store: Store, path: Path, ecosystem: str = "PyPI") -> tuple[int, int]:
    """Load an OSV zip of one ecosystem (PyPI or Debian); return ``(serial, advisories)``."""
    if not path.is_file():
        raise ReservoirError(f"{path}: no such file")
    rows = vulndb.read_zip(path, vulndb.check_ecosystem(ecosystem))
    with path.open("rb") as fh:
        sha, size = store.blobs.put_file(fh)
    serial = store.apply("vulndb_updated", None, {"sha256": sha, "size": size, "ecosystem": ecosystem})
    return serial, len({r[0] for r in rows})


@dataclasses.dataclass(frozen=True)
class Verdict:
    license: licenses.License
    vulnerabilities: list[dict[str, Any]]
    reasons: list[str]


def evaluate(store: Store, policy: Policy, record: FileRecord, now: dt.datetime | None = None) -> Verdict:
    lic = licenses.detect(record.license_expression, record.license, record.classifiers)
    reasons: list[str] = []
    if lic.expression is None:
        if policy.unknown_license == "quarantine":
            reasons.append("license unknown (needs review)")
    elif policy.allow or policy.deny:
        verdict = licenses.judge(lic.expression, policy.allow, policy.deny)
        if verdict:
            reasons.append(verdict)
    vulns = vulndb.matches(store.conn, record.project, record.version)
    for vuln in vulns:
        if vuln["malicious"]:
            reasons.append(f"malicious package ({vuln['id']})")
        elif policy.vulnerabilities == "quarantine":
            reasons.append(f"vulnerable ({vuln['id']})")
    try:
        version: Version | None = Version(record.version)
    except InvalidVersion:
        version = None
    for req in policy.block:
        if normalize(req.name) == record.project and (
            not req.specifier or (version is not None and req.specifier.contains(version, prereleases=True))
        ):
            reasons.append(f"blocked by rule {str(req)!r}")
    reasons += _age_reasons(policy, record.upload_time, "upload time", now)
    return Verdict(lic, vulns, reasons)


def _age_reasons(policy: Policy, released: str | None, what: str, now: dt.datetime | None) -> list[str]:
    """The minimum release age rule, the same for PyPI files and Debian packages."""
    if policy.minimum_age_days <= 0:
        return []
    when = _parse_time(released)
    if when is None:
        if policy.unknown_age == "quarantine":
            return [f"{what} unknown; cannot check the minimum release age"]
        return []
    age = (now or dt.datetime.now(dt.UTC)) - when
    if age < dt.timedelta(days=policy.minimum_age_days):
        return [f"released {age.days} days ago; the minimum age is {policy.minimum_age_days:g} days"]
    return []


def evaluate_deb(
    store: Store, policy: Policy, record: DebRecord, now: dt.datetime | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """``(advisories, reasons)`` for a Debian package.

    Its source package is checked against the Debian advisories (with the
    same ``[vulnerabilities] action``); the ``[block] debian`` rules match the
    binary package or its source, each with its own version; the minimum age
    uses the package's release time.
    """
    source, version = record.source
    vulns = vulndb.matches_deb(store.conn, source, version, record.suite)
    reasons = []
    for vuln in vulns:
        if vuln["malicious"]:
            reasons.append(f"malicious package ({vuln['id']})")
        elif policy.vulnerabilities == "quarantine":
            reasons.append(f"vulnerable ({vuln['id']})")
    for rule in policy.block_debian:
        if rule.blocks(record.package, record.version) or rule.blocks(source, version):
            reasons.append(f"blocked by rule {rule.text!r}")
    reasons += _age_reasons(policy, record.release_time, "release time", now)
    return vulns, reasons


def deb_reason(store: Store, record: DebRecord) -> str | None:
    """The quarantine reason for a Debian package on ingest, or None when it passes."""
    _, reasons = evaluate_deb(store, current(store), record)
    return PREFIX + "; ".join(reasons) if reasons else None


def evaluate_cran(store: Store, policy: Policy, record: CranRecord, now: dt.datetime | None = None) -> list[str]:
    """Reasons an R package breaks the policy: its ``DESCRIPTION`` license (R's names mapped to SPDX, see
    :func:`.cran.description.spdx_license`) and the minimum age (from CRAN's ``Date/Publication``, else the
    upload time). No advisory database for R packages is loaded."""
    from .cran import description

    raw = record.fields.get("License", "")
    reasons = _license_reasons(policy, description.spdx_license(raw), raw)
    return reasons + _age_reasons(policy, record.upload_time, "upload time", now)


def _license_reasons(policy: Policy, expression: str | None, raw: str) -> list[str]:
    """The license rules for a package kind whose own license field was mapped to SPDX (None: unknown)."""
    if expression is None:
        return [f"license {raw!r} unknown (needs review)"] if policy.unknown_license == "quarantine" else []
    if policy.allow or policy.deny:
        verdict = licenses.judge(expression, policy.allow, policy.deny)
        if verdict:
            return [verdict]
    return []


def evaluate_rpm(
    store: Store, policy: Policy, record: RpmRecord, now: dt.datetime | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """``(advisories, reasons)`` for an RPM: its header's ``License`` (see :func:`.rpm.licenses.spdx_license`),
    the RPM distributions' advisories for its name and epoch:version-release (with the same
    ``[vulnerabilities] action``), and the minimum age from its build time."""
    from .rpm.licenses import spdx_license

    reasons = _license_reasons(policy, spdx_license(record.header.license), record.header.license)
    vulns = vulndb.matches_rpm(store.conn, record.header.name, record.header.evr)
    for vuln in vulns:
        if vuln["malicious"]:
            reasons.append(f"malicious package ({vuln['id']})")
        elif policy.vulnerabilities == "quarantine":
            reasons.append(f"vulnerable ({vuln['id']})")
    return vulns, reasons + _age_reasons(policy, record.upload_time, "build time", now)


def rpm_reason(store: Store, record: RpmRecord) -> str | None:
    """The quarantine reason for an RPM on ingest, or None when it passes."""
    _, reasons = evaluate_rpm(store, current(store), record)
    return PREFIX + "; ".join(reasons) if reasons else None


def cran_reason(store: Store, record: CranRecord) -> str | None:
    """The quarantine reason for an R package on ingest, or None when it passes."""
    reasons = evaluate_cran(store, current(store), record)
    return PREFIX + "; ".join(reasons) if reasons else None


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def make_checker(store: Store) -> Any:
    """The hook the store calls on ingest: a quarantine reason, or None."""

    def check(record: FileRecord) -> str | None:
        verdict = evaluate(store, current(store), record)
        return PREFIX + "; ".join(verdict.reasons) if verdict.reasons else None

    return check


def audit(store: Store, *, verify_blobs: bool = False, apply: bool = True) -> dict[str, Any]:
    """Re-judge every file against the current policy and database; quarantine or release accordingly."""
    policy = current(store)
    now = dt.datetime.now(dt.UTC)
    files = []
    counts = {
        "active": 0,
        "quarantined": 0,
        "newly_quarantined": 0,
        "released": 0,
        "vulnerable": 0,
        "unknown_license": 0,
        "missing_or_corrupt": 0,
    }
    for record in store.files():
        verdict = evaluate(store, policy, record, now)
        action = None
        reason = PREFIX + "; ".join(verdict.reasons) if verdict.reasons else None
        if verify_blobs and not store.blobs.verify(record.sha256):
            counts["missing_or_corrupt"] += 1
            reason = (reason + "; " if reason else PREFIX) + "stored file is missing or corrupt"
        status = record.status
        if apply:
            if reason and record.status == "active":
                store.quarantine(record.filename, reason)
                status, action = "quarantined", "quarantined"
                counts["newly_quarantined"] += 1
            elif (
                reason
                and record.status == "quarantined"
                and (record.reason or "").startswith(PREFIX)
                and record.reason != reason
            ):
                store.apply("quarantined", record.filename, {"reason": reason})
            elif not reason and record.status == "quarantined" and (record.reason or "").startswith(PREFIX):
                store.release(record.filename)
                status, action = "active", "released"
                counts["released"] += 1
        counts[status] += 1
        counts["vulnerable"] += bool(verdict.vulnerabilities)
        counts["unknown_license"] += verdict.license.expression is None
        files.append(
            {
                "filename": record.filename,
                "project": record.project,
                "version": record.version,
                "license": verdict.license.expression,
                "license_source": verdict.license.source,
                "vulnerabilities": [v["id"] for v in verdict.vulnerabilities],
                "status": status,
                "reason": reason
                if status == "quarantined" and reason
                else (record.reason if status == "quarantined" else None),
                "action": action,
            }
        )
    debs = _audit_debs(store, policy, apply)
    counts["debs_quarantined"] = sum(d["status"] == "quarantined" for d in debs)
    counts["debs_vulnerable"] = sum(bool(d["vulnerabilities"]) for d in debs)
    cran = _audit_cran(store, policy, apply)
    counts["cran_quarantined"] = sum(c["status"] == "quarantined" for c in cran)
    rpms = _audit_rpm(store, policy, apply)
    counts["rpm_quarantined"] = sum(r["status"] == "quarantined" for r in rpms)
    counts["rpm_vulnerable"] = sum(bool(r["vulnerabilities"]) for r in rpms)
    report = {
        "serial": store.serial(),
        "advisories": vulndb.count(store.conn),
        "summary": counts,
        "files": files,
        "debs": debs,
        "cran": cran,
        "rpm": rpms,
    }
    if apply:
        report.update(_republish({d["suite"] for d in debs if d["action"]}, store))
        report.update(_republish_rpm({r["repo"] for r in rpms if r["action"]}, store))
    return report


def _audit_debs(store: Store, policy: Policy, apply: bool) -> list[dict[str, Any]]:
    """Re-judge every Debian package; quarantine or release the way ``audit`` does for Python files."""
    out = []
    now = dt.datetime.now(dt.UTC)
    for record in records.listing(store.conn):
        vulns, reasons = evaluate_deb(store, policy, record, now)
        reason = PREFIX + "; ".join(reasons) if reasons else None
        status, action = record.status, None
        ours = (record.reason or "").startswith(PREFIX)
        if apply:
            if reason and record.status == "active":
                records.quarantine_deb(store, record.suite, record.filename, reason)
                status, action = "quarantined", "quarantined"
            elif not reason and record.status == "quarantined" and ours:
                records.release_deb(store, record.suite, record.filename)
                status, action = "active", "released"
            elif reason and record.status == "quarantined" and ours and record.reason != reason:
                records.quarantine_deb(store, record.suite, record.filename, reason)
        source, source_version = record.source
        out.append(
            {
                "suite": record.suite,
                "filename": record.filename,
                "package": record.package,
                "version": record.version,
                "source": source,
                "source_version": source_version,
                "release_time": record.release_time,
                "vulnerabilities": [v["id"] for v in vulns],
                "status": status,
                "reason": (reason or record.reason) if status == "quarantined" else None,
                "action": action,
            }
        )
    return out


def _audit_cran(store: Store, policy: Policy, apply: bool) -> list[dict[str, Any]]:
    """Re-judge every R package; quarantine or release the way ``audit`` does for Python files."""
    from .cran import records as cran_records

    out = []
    now = dt.datetime.now(dt.UTC)
    for record in cran_records.listing(store.conn):
        reasons = evaluate_cran(store, policy, record, now)
        reason = PREFIX + "; ".join(reasons) if reasons else None
        status, action = record.status, None
        ours = (record.reason or "").startswith(PREFIX)
        if apply:
            if reason and (record.status == "active" or (ours and record.reason != reason)):
                cran_records.change(store, "cran_quarantined", record.filename, reason)
                status, action = "quarantined", "quarantined" if record.status == "active" else None
            elif not reason and record.status == "quarantined" and ours:
                cran_records.change(store, "cran_released", record.filename)
                status, action = "active", "released"
        out.append(
            {
                "filename": record.filename,
                "package": record.package,
                "version": record.version,
                "license": record.fields.get("License"),
                "status": status,
                "reason": (reason or record.reason) if status == "quarantined" else None,
                "action": action,
            }
        )
    return out


def _audit_rpm(store: Store, policy: Policy, apply: bool) -> list[dict[str, Any]]:
    """Re-judge every RPM; quarantine or release the way ``audit`` does for Python files."""
    from .rpm import records as rpm_records

    out = []
    now = dt.datetime.now(dt.UTC)
    table = rpm_records.TABLE
    for record in rpm_records.listing(store.conn):
        vulns, reasons = evaluate_rpm(store, policy, record, now)
        reason = PREFIX + "; ".join(reasons) if reasons else None
        status, action = record.status, None
        ours = (record.reason or "").startswith(PREFIX)
        if apply:
            if reason and (record.status == "active" or (ours and record.reason != reason)):
                table.change(store, "quarantined", record.filename, record.repo, reason)
                status, action = "quarantined", "quarantined" if record.status == "active" else None
            elif not reason and record.status == "quarantined" and ours:
                table.change(store, "released", record.filename, record.repo)
                status, action = "active", "released"
        out.append(
            {
                **{k: v for k, v in record.to_json().items() if k in ("repo", "filename", "name", "license")},
                "evr": record.header.evr,
                "vulnerabilities": [v["id"] for v in vulns],
                "status": status,
                "reason": (reason or record.reason) if status == "quarantined" else None,
                "action": action,
            }
        )
    return out


def _publish_each(names: set[str], publish_one: Callable[[str], object]) -> tuple[list[str], str | None]:
    """Publish each of ``names`` in order; stop at the first failure: (those published, its message or None)."""
    done: list[str] = []
    try:
        for name in sorted(names):
            publish_one(name)
            done.append(name)
    except ReservoirError as exc:
        return done, exc.message
    return done, None


def _republish_rpm(repos: set[str], store: Store) -> dict[str, Any]:
    """Publish the RPM repositories whose packages changed state, so dnf stops (or starts) seeing them."""
    from .rpm import publish as rpm_publish

    done, error = _publish_each(repos, lambda repo: rpm_publish.publish(store, repo))
    return {"published_rpm_repos": done, "rpm_publish_error": error}


def _republish(suites: set[str], store: Store) -> dict[str, Any]:
    """Publish the suites whose packages changed state, so apt stops (or starts) seeing them."""
    done, error = _publish_each(suites, lambda suite: publish.publish(store, suite))
    return {"published_suites": done, "publish_error": error}
