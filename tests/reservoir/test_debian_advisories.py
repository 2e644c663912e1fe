"""Debian OSV advisories: imported offline, matched by dpkg ordering, applied to held packages.

The packages are built here with ``dpkg-deb --build`` (no mirror needed); the
OSV dumps are small zips written by the tests in the format of the Debian
ecosystem's ``all.zip`` (source package names, ``Debian:12`` ecosystems).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cove.reservoir import policy, vulndb
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.debian import publish, records
from cove.reservoir.errors import ReservoirError
from cove.reservoir.keys import public_key_file, trust
from cove.reservoir.policy import audit, import_vulndb
from cove.reservoir.store import Store

from .debs import build_deb as build_deb  # test_debian_policy imports it from here

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")


def advisory(vid: str, name: str, fixed: str, ecosystem: str = "Debian:12", **extra: Any) -> dict[str, Any]:
    return {
        "id": vid,
        "summary": f"{name} security update",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
        **extra,
    }


def osv_zip(path: Path, records_: list[dict[str, Any]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for record in records_:
            zf.writestr(f"{record['id']}.json", json.dumps(record))
    return path


@pytest.fixture
def debs(tmp_path: Path) -> dict[str, Path]:
    work = tmp_path / "debs"
    work.mkdir()
    return {
        # A binNMU: its source version differs from the binary's.
        "libdemo": build_deb(work, "libcove-demo1", "1.2-3+b1", source="cove-demo (1.2-3)"),
        "tool": build_deb(work, "cove-tool", "2.0~rc1-1"),
        "fixed": build_deb(work, "cove-safe", "5.0-1+deb12u4", source="cove-safe"),
    }


def test_read_and_match_debian_dump(store: Store, tmp_path: Path) -> None:
    dump = osv_zip(
        tmp_path / "all.zip",
        [
            advisory("DSA-1-1", "cove-demo", "1.2-3+deb12u1"),
            advisory("DLA-2-1", "cove-demo", "1.2-4", ecosystem="Debian:11"),
            advisory("DEBIAN-CVE-2024-0001", "cove-safe", "5.0-1+deb12u4"),
            advisory("GHSA-xxxx", "cove-demo", "9.9", ecosystem="PyPI"),
            {**advisory("DSA-3-1", "cove-demo", "9.9"), "withdrawn": "2024-01-01T00:00:00Z"},
        ],
    )
    serial, count = import_vulndb(store, dump, "Debian")
    assert count == 4 and serial == store.serial()  # the PyPI-only record is not one of them
    conn = store.conn
    assert [v["id"] for v in vulndb.matches_deb(conn, "cove-demo", "1.2-3", "bookworm")] == ["DSA-1-1"]
    assert vulndb.matches_deb(conn, "cove-demo", "1.2-3+deb12u1", "bookworm") == []  # the fixed version
    assert vulndb.matches_deb(conn, "cove-demo", "1:1.0", "bookworm") == []  # a later epoch
    # Another release's advisory applies to its own suite only; an unknown suite name gets every release's.
    assert [v["id"] for v in vulndb.matches_deb(conn, "cove-demo", "1.2-3+deb12u1", "bullseye")] == ["DLA-2-1"]
    assert {v["id"] for v in vulndb.matches_deb(conn, "cove-demo", "1.2-3", "site-local")} == {"DSA-1-1", "DLA-2-1"}
    assert vulndb.matches_deb(conn, "cove-safe", "5.0-1+deb12u4", "bookworm") == []
    assert [v["id"] for v in vulndb.matches_deb(conn, "cove-safe", "5.0-1+deb12u3", "bookworm")] == [
        "DEBIAN-CVE-2024-0001"
    ]
    # The PyPI snapshot is untouched by a Debian one, and vice versa.
    assert vulndb.matches(conn, "cove-demo", "1.0") == []
    assert vulndb.count(conn, "Debian") == 4 and vulndb.count(conn, "PyPI") == 0


def test_ecosystems_are_separate_snapshots(store: Store, tmp_path: Path) -> None:
    pypi = {"id": "PYSEC-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1.0"]}]}
    import_vulndb(store, osv_zip(tmp_path / "pypi.zip", [pypi]), "PyPI")
    import_vulndb(store, osv_zip(tmp_path / "deb.zip", [advisory("DSA-1-1", "x", "1.0-1")]), "Debian")
    assert [v["id"] for v in vulndb.matches(store.conn, "x", "1.0")] == ["PYSEC-1"]
    import_vulndb(store, osv_zip(tmp_path / "deb2.zip", []), "Debian")  # a newer, empty Debian dump
    assert vulndb.count(store.conn, "PyPI") == 1 and vulndb.count(store.conn, "Debian") == 0
    with pytest.raises(ReservoirError, match="unsupported OSV ecosystem"):
        import_vulndb(store, tmp_path / "deb2.zip", "npm")


def test_vulnerable_debs_are_quarantined_on_ingest_and_released_by_audit(
    store: Store, debs: dict[str, Path], tmp_path: Path
) -> None:
    import_vulndb(store, osv_zip(tmp_path / "v1.zip", [advisory("DSA-1-1", "cove-demo", "1.2-3+deb12u1")]), "Debian")
    demo, _ = records.add_deb(store, debs["libdemo"], "bookworm", judge=policy.deb_reason)
    tool, _ = records.add_deb(store, debs["tool"], "bookworm", judge=policy.deb_reason)
    assert demo.source == ("cove-demo", "1.2-3")
    assert demo.status == "quarantined" and demo.reason == "policy: vulnerable (DSA-1-1)"
    assert tool.status == "active"
    kinds = [e.kind for e in store.events_since(0)]
    assert kinds[-3:] == ["deb_added", "deb_quarantined", "deb_added"]

    # A new dump flags the tool (its "~rc1" sorts before the fix) and clears the library.
    newer = [advisory("DSA-9-1", "cove-tool", "2.0-1")]
    import_vulndb(store, osv_zip(tmp_path / "v2.zip", newer), "Debian")
    dry = audit(store, apply=False)
    assert {d["filename"]: d["vulnerabilities"] for d in dry["debs"]} == {
        demo.filename: [],
        tool.filename: ["DSA-9-1"],
    }
    assert records.get(store.conn, "bookworm", tool.filename).status == "active"  # type: ignore[union-attr]
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (audit republishes the suite)")
    report = audit(store)
    actions = {d["filename"]: d["action"] for d in report["debs"]}
    assert actions == {demo.filename: "released", tool.filename: "quarantined"}
    assert report["summary"]["debs_quarantined"] == 1 and report["published_suites"] == ["bookworm"]
    # The published suite lists only what passes, and the pool no longer holds the quarantined file.
    binary = f"binary-{publish.host_arch()}"
    packages = (store.layout.debian / "dists" / "bookworm" / "main" / binary / "Packages").read_text()
    assert "Package: libcove-demo1" in packages and "cove-tool" not in packages
    assert not (store.layout.debian / tool.pool_path).exists()
    assert (store.layout.debian / demo.pool_path).is_file()
    # Running it again changes nothing.
    again = audit(store)
    assert all(d["action"] is None for d in again["debs"]) and again["published_suites"] == []


def test_operator_quarantine_is_left_alone_and_bundles_carry_the_state(
    store: Store, debs: dict[str, Path], tmp_path: Path
) -> None:
    record, _ = records.add_deb(store, debs["fixed"], "bookworm", judge=policy.deb_reason)
    records.quarantine_deb(store, "bookworm", record.filename, "held for review")
    import_vulndb(store, osv_zip(tmp_path / "v.zip", [advisory("DSA-5-1", "cove-safe", "5.0-1+deb12u4")]), "Debian")
    report = audit(store, apply=False)
    assert report["debs"][0]["status"] == "quarantined" and report["debs"][0]["vulnerabilities"] == []

    other = Store(tmp_path / "other")
    try:
        trust(other.layout, public_key_file(store.layout))
        export_bundle(store, tmp_path / "bundle")
        imported = import_bundle(other, tmp_path / "bundle")
        assert imported.applied_events == len(store.events_since(0))
        held = records.get(other.conn, "bookworm", record.filename)
        assert held is not None and held.status == "quarantined" and held.reason == "held for review"
        assert vulndb.count(other.conn, "Debian") == 1
        records.release_deb(store, "bookworm", record.filename)
        export_bundle(store, tmp_path / "delta", since=imported.target_serial)
        import_bundle(other, tmp_path / "delta")
        assert records.get(other.conn, "bookworm", record.filename).status == "active"  # type: ignore[union-attr]
    finally:
        other.close()


def test_version_two_root_gains_the_new_columns(tmp_path: Path) -> None:
    """A root written before Debian advisories: its advisories are PyPI's and its packages active."""
    root = tmp_path / "old"
    Store(root).close()
    conn = sqlite3.connect(root / "reservoir.db")
    conn.executescript(
        "ALTER TABLE vulns DROP COLUMN ecosystem; ALTER TABLE debs DROP COLUMN status;"
        "ALTER TABLE debs DROP COLUMN reason; UPDATE meta SET value='2' WHERE key='schema_version';"
        "INSERT INTO vulns(id, project, record) VALUES ('PYSEC-1', 'x', '{}');"
    )
    conn.close()
    again = Store(root)
    try:
        assert vulndb.count(again.conn, "PyPI") == 1
        assert again.get_meta("schema_version") == "3"
        columns = {row[1] for row in again.conn.execute("PRAGMA table_info(debs)")}
        assert {"status", "reason"} <= columns
    finally:
        again.close()
