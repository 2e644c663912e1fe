"""Licenses, OSV advisories, block lists, release age; quarantine, audit, and policy carried by bundles."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from cove.reservoir import keys, licenses
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.errors import ReservoirError
from cove.reservoir.policy import Policy, audit, import_vulndb, set_policy
from cove.reservoir.store import Store

from .conftest import Wheelhouse


def test_license_detection() -> None:
    assert licenses.detect("MIT OR Apache-2.0", "whatever", []) == licenses.License("MIT OR Apache-2.0", "expression")
    assert licenses.detect(None, "MIT License", []).expression == "MIT"
    assert licenses.detect(None, "BSD-2-Clause", []).expression == "BSD-2-Clause"
    assert (
        licenses.detect(
            None,
            "Copyright (c) someone, all rights reserved...",
            ["License :: OSI Approved :: Apache Software License"],
        ).expression
        == "Apache-2.0"
    )
    assert licenses.detect(None, None, ["Programming Language :: Python"]).source == "unknown"


def test_license_judgement() -> None:
    assert licenses.judge("MIT", ["MIT"], []) is None
    assert licenses.judge("GPL-3.0-only OR MIT", [], ["GPL-3.0-only"]) is None  # the MIT branch is fine
    assert "denied" in (licenses.judge("GPL-3.0-only AND MIT", [], ["GPL-3.0-only"]) or "")
    assert "allow list" in (licenses.judge("MPL-2.0", ["MIT"], []) or "")
    assert licenses.judge("(Apache-2.0 WITH LLVM-exception) AND MIT", ["Apache-2.0", "MIT"], []) is None
    assert licenses.judge("MIT AND (", [], []) is not None


@pytest.mark.parametrize(
    "text",
    [
        "[licenses]\nallow = 'MIT'\n",
        "[licences]\nallow = []\n",
        "[licenses]\ndeny = ['MIT AND']\n",
        "[block]\nrequirements = ['not a req !!']\n",
        "[age]\nminimum_days = -1\n",
        "[vulnerabilities]\naction = 'x'\n",
        "not toml [",
    ],
)
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(ReservoirError, match="policy"):
        Policy.parse(text)


def _osv(path: Path, records: Sequence[Mapping[str, object]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for record in records:
            zf.writestr(f"{record['id']}.json", json.dumps(record))
    return path


ADVISORIES = [
    {
        "id": "PYSEC-2099-1",
        "summary": "beta before 2.0 is bad",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Cove_Demo.Beta"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
            }
        ],
    },
    {
        "id": "MAL-2099-7",
        "summary": "malicious",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "cove-demo-gamma"}, "versions": ["0.1"]}],
    },
    {
        "id": "PYSEC-2099-2",
        "withdrawn": "2099-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "cove-demo-alpha"}, "versions": ["1.0"]}],
    },
    {
        "id": "DEBIAN-1",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "cove-demo-alpha"}, "versions": ["1.0"]}],
    },
]


def _add_all(store: Store, wheelhouse: Wheelhouse, *keys_: str) -> None:
    for key in keys_:
        store.add_file(wheelhouse[key], wheelhouse[key].name, origin="test", upload_time="2001-01-01T00:00:00.000000Z")


def test_ingest_quarantines_and_audit_releases(store: Store, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n[block]\nrequirements = ["cove-demo-alpha<1.0"]\n')
    set_policy(store, policy)
    _add_all(store, wheelhouse, "alpha-1.0", "delta-3.0")
    delta = store.get_file(wheelhouse["delta-3.0"].name)
    assert delta is not None and delta.status == "quarantined" and "GPL-3.0-only" in (delta.reason or "")
    assert b"cove_demo_delta" not in store.page("cove-demo-delta")[0]  # type: ignore[index]
    assert store.get_file(wheelhouse["alpha-1.0"].name).status == "active"  # type: ignore[union-attr]

    policy.write_text('[block]\nrequirements = ["cove-demo-alpha>=1.0"]\n')
    set_policy(store, policy)
    report = audit(store)
    by_name = {f["filename"]: f for f in report["files"]}
    assert by_name[wheelhouse["delta-3.0"].name]["action"] == "released"
    alpha = by_name[wheelhouse["alpha-1.0"].name]
    assert alpha["action"] == "quarantined" and "blocked by rule" in alpha["reason"]
    assert report["summary"]["released"] == 1 and report["summary"]["newly_quarantined"] == 1
    # Operator quarantines are not released by audit.
    store.release(wheelhouse["alpha-1.0"].name)
    store.quarantine(wheelhouse["delta-3.0"].name, "operator hold")
    policy.write_text("")
    set_policy(store, policy)
    audit(store)
    assert store.get_file(wheelhouse["delta-3.0"].name).reason == "operator hold"  # type: ignore[union-attr]


def test_vulnerabilities(store: Store, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[vulnerabilities]\naction = "report"\n')
    set_policy(store, policy)
    _, count = import_vulndb(store, _osv(tmp_path / "all.zip", ADVISORIES))
    assert count == 3  # the Debian-only record is not about PyPI
    _add_all(store, wheelhouse, "alpha-1.0", "beta-1.0", "beta-2.0", "gamma-0.1")
    status = {r.filename: (r.status, r.reason) for r in store.files()}
    assert status[wheelhouse["gamma-0.1"].name][0] == "quarantined"  # MAL- blocks whatever the action
    assert "MAL-2099-7" in (status[wheelhouse["gamma-0.1"].name][1] or "")
    assert status[wheelhouse["beta-1.0"].name] == ("active", None)  # reported, not blocked
    report = audit(store, apply=False)
    vulns = {f["filename"]: f["vulnerabilities"] for f in report["files"]}
    assert vulns[wheelhouse["beta-1.0"].name] == ["PYSEC-2099-1"] and vulns[wheelhouse["beta-2.0"].name] == []
    assert vulns[wheelhouse["alpha-1.0"].name] == []  # withdrawn
    policy.write_text('[vulnerabilities]\naction = "quarantine"\n')
    set_policy(store, policy)
    audit(store)
    assert store.get_file(wheelhouse["beta-1.0"].name).status == "quarantined"  # type: ignore[union-attr]
    assert store.get_file(wheelhouse["beta-2.0"].name).status == "active"  # type: ignore[union-attr]


def test_bad_osv_dump(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(ReservoirError, match="not a zip"):
        import_vulndb(store, bad)
    with zipfile.ZipFile(tmp_path / "junk.zip", "w") as zf:
        zf.writestr("x.json", "{not json")
    with pytest.raises(ReservoirError, match="not an OSV record"):
        import_vulndb(store, tmp_path / "junk.zip")
    assert store.serial() == 0


def test_minimum_age(store: Store, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[age]\nminimum_days = 3\n")
    set_policy(store, policy)
    _add_all(store, wheelhouse, "alpha-1.0")  # uploaded in 2001
    fresh = wheelhouse["beta-2.0"]
    record, _ = store.add_file(fresh, fresh.name, origin="test")  # uploaded now
    assert store.get_file(wheelhouse["alpha-1.0"].name).status == "active"  # type: ignore[union-attr]
    assert record.status == "quarantined" and "minimum age is 3 days" in (record.reason or "")


def test_bundle_carries_policy_and_vulndb(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    online = Store(tmp_path / "online")
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(online.layout))
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n')
    set_policy(online, policy)
    import_vulndb(online, _osv(tmp_path / "all.zip", ADVISORIES))
    _add_all(online, wheelhouse, "delta-3.0", "beta-1.0")
    export_bundle(online, tmp_path / "b")
    import_bundle(closed, tmp_path / "b")
    assert closed.get_meta("policy") == online.get_meta("policy")
    assert audit(closed, apply=False)["advisories"] == 3
    delta = closed.get_file(wheelhouse["delta-3.0"].name)
    assert delta is not None and delta.status == "quarantined"
    assert {f.filename: f.status for f in closed.files()} == {f.filename: f.status for f in online.files()}
    closed.close()
    online.close()


def test_audit_cli(filled: Store, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\nallow = ["MIT", "Apache-2.0"]\nunknown = "quarantine"\n')
    root = str(filled.layout.root)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cove.reservoir", *args, "--root", root], capture_output=True, text=True
        )

    assert cli("policy", "set", str(policy)).returncode == 0
    result = cli("audit", "--json", "--verify-blobs")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    states = {f["project"]: f["status"] for f in report["files"]}
    assert states["cove-demo-alpha"] == "active" and states["cove-demo-delta"] == "quarantined"
    gamma = [f for f in report["files"] if f["project"] == "cove-demo-gamma"]
    assert {f["license"] for f in gamma} == {"BSD-3-Clause", None}  # wheel from License; sdist has none
    text = cli("audit")
    assert text.returncode == 0 and "quarantined" in text.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[licenses]\nallow = 'MIT'\n")
    refused = cli("policy", "set", str(bad))
    assert refused.returncode == 1 and "list of strings" in refused.stderr
