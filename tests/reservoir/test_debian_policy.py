"""Site policy on Debian packages (block rules with dpkg versions, minimum release age) and gc of Debian blobs.

The packages are built here with ``dpkg-deb --build``; ``SOURCE_DATE_EPOCH``
sets the build time dpkg-deb writes into them, which is what the release age
is measured from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cove.reservoir import policy
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.debian import publish, records
from cove.reservoir.errors import ReservoirError
from cove.reservoir.gc import collect
from cove.reservoir.keys import public_key_file, trust
from cove.reservoir.store import Store

from .test_debian_advisories import build_deb

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")

SUITE = "bookworm"
OLD = 1_600_000_000  # 2020-09-13


def _policy(store: Store, tmp_path: Path, text: str) -> None:
    path = tmp_path / f"policy-{time.monotonic_ns()}.toml"
    path.write_text(text)
    policy.set_policy(store, path)


def _cli(store: Store, *args: str) -> dict[str, object]:
    cmd = [sys.executable, "-m", "cove.reservoir", *args, "--root", str(store.layout.root), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def old_debs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Packages built long ago (old enough for any age rule)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(OLD))
    work = tmp_path / "debs"
    work.mkdir()
    return {
        "libdemo": build_deb(work, "libcove-demo1", "1.2-3+b1", source="cove-demo (1.2-3)"),
        "tool": build_deb(work, "cove-tool", "2.0~rc1-1"),
        "safe": build_deb(work, "cove-safe", "1:5.0-1+deb12u4"),
    }


def test_block_rules_match_names_and_dpkg_versions(store: Store, old_debs: dict[str, Path], tmp_path: Path) -> None:
    _policy(
        store,
        tmp_path,
        """
        [block]
        debian = ["cove-demo (<< 1.2-3+deb12u1)", "cove-tool (>= 2.0-1)", "cove-safe (= 1:5.0-1+deb12u4)"]
        """,
    )
    demo, _ = records.add_deb(store, old_debs["libdemo"], SUITE, judge=policy.deb_reason)
    tool, _ = records.add_deb(store, old_debs["tool"], SUITE, judge=policy.deb_reason)
    safe, _ = records.add_deb(store, old_debs["safe"], SUITE, judge=policy.deb_reason)
    # The rule on the source package catches its binary (1.2-3 << 1.2-3+deb12u1); "~rc1" sorts before 2.0-1.
    assert demo.status == "quarantined" and demo.reason == "policy: blocked by rule 'cove-demo (<< 1.2-3+deb12u1)'"
    assert tool.status == "active"
    assert safe.status == "quarantined" and "'cove-safe (= 1:5.0-1+deb12u4)'" in str(safe.reason)
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (publishing signs the suite)")
    publish.publish(store, SUITE)
    packages = (
        store.layout.debian / "dists" / SUITE / "main" / f"binary-{publish.host_arch()}" / "Packages"
    ).read_text()
    assert "Package: cove-tool\n" in packages
    assert "libcove-demo1" not in packages and "cove-safe" not in packages

    # A new rule blocks the tool too; dropping the others releases them: audit re-judges and reports it all.
    _policy(store, tmp_path, '[block]\ndebian = ["cove-tool"]\n')
    report = _cli(store, "audit")
    debs = {d["package"]: d for d in report["debs"]}  # type: ignore[attr-defined]
    assert debs["cove-tool"]["action"] == "quarantined" and debs["cove-tool"]["reason"] == (
        "policy: blocked by rule 'cove-tool'"
    )
    assert debs["libcove-demo1"]["action"] == "released" and debs["cove-safe"]["action"] == "released"
    assert report["published_suites"] == [SUITE]
    packages = (
        store.layout.debian / "dists" / SUITE / "main" / f"binary-{publish.host_arch()}" / "Packages"
    ).read_text()
    assert "cove-tool" not in packages and "Package: libcove-demo1\n" in packages


@pytest.mark.parametrize(
    "rule", ["openssl (< 3.0)", "Open_SSL", "openssl (<< )", "openssl (<< 3.0) extra", "openssl (<< x1)"]
)
def test_invalid_block_rules_are_refused(rule: str) -> None:
    with pytest.raises(ReservoirError, match=r"policy: invalid Debian block rule|invalid Debian version"):
        policy.Policy.parse(f"[block]\ndebian = [{json.dumps(rule)}]\n")


def test_minimum_release_age_uses_the_packages_build_time(
    store: Store, old_debs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policy(store, tmp_path, "[age]\nminimum_days = 3\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(time.time()) - 3600))  # built an hour ago
    fresh_deb = build_deb(tmp_path / "debs", "cove-fresh", "1.0-1")
    old, _ = records.add_deb(store, old_debs["tool"], SUITE, judge=policy.deb_reason)
    fresh, _ = records.add_deb(store, fresh_deb, SUITE, judge=policy.deb_reason)
    assert old.release_time == "2020-09-13T12:26:40Z" and old.status == "active"
    assert fresh.status == "quarantined" and fresh.reason == "policy: released 0 days ago; the minimum age is 3 days"
    # The release time travels in the event, so the closed side judges by the same clock.
    added = [e for e in store.events_since(0) if e.kind == "deb_added" and e.filename == fresh.filename]
    assert added[0].data["release_time"] == fresh.release_time

    # Packages of unknown age (ingested before release times were recorded) follow [age] unknown.
    store.conn.execute("UPDATE debs SET release_time=NULL WHERE filename=?", (old.filename,))
    _policy(store, tmp_path, '[age]\nminimum_days = 3\nunknown = "quarantine"\n')
    report = policy.audit(store, apply=False)
    reasons = {d["package"]: d["reason"] for d in report["debs"]}
    assert reasons["cove-tool"] is None  # apply=False: reported, not acted on
    verdict = policy.evaluate_deb(store, policy.current(store), records.get(store.conn, SUITE, old.filename))  # type: ignore[arg-type]
    assert verdict[1] == ["release time unknown; cannot check the minimum release age"]


def test_gc_deletes_blobs_of_removed_debs_and_bundles_still_replay(
    store: Store, old_debs: dict[str, Path], tmp_path: Path
) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (publishing signs the suite)")
    kept, _ = records.add_deb(store, old_debs["tool"], SUITE, judge=policy.deb_reason)
    gone, _ = records.add_deb(store, old_debs["libdemo"], SUITE, judge=policy.deb_reason)
    held, _ = records.add_deb(store, old_debs["safe"], SUITE, judge=policy.deb_reason)
    records.quarantine_deb(store, SUITE, held.filename, "held for review")
    publish.publish(store, SUITE)
    records.remove_deb(store, SUITE, gone.filename)
    publish.publish(store, SUITE)
    for record in (kept, gone, held):
        then = time.time() - 7200
        os.utime(store.blobs.path(record.sha256), (then, then))

    dry = collect(store, dry_run=True)
    assert dry.deleted == [gone.sha256] and dry.debian_blobs_deleted == 1 and store.blobs.has(gone.sha256)
    report = _cli(store, "gc")
    assert report["deleted"] == [gone.sha256] and report["debian_blobs_deleted"] == 1
    assert not store.blobs.has(gone.sha256)
    assert store.blobs.has(kept.sha256) and store.blobs.has(held.sha256)  # published, and quarantined: both held
    assert collect(store, grace=0).blobs_deleted == 0

    # The whole history still exports (the undone add travels without its blob) and replays elsewhere.
    summary = export_bundle(store, tmp_path / "bundle")
    assert summary["blobs"] == 2
    other = Store(tmp_path / "other")
    try:
        trust(other.layout, public_key_file(store.layout))
        imported = import_bundle(other, tmp_path / "bundle")
        assert imported.publish_error is None and imported.published_suites == [SUITE]
        assert {(r.filename, r.status) for r in records.listing(other.conn)} == {
            (kept.filename, "active"),
            (held.filename, "quarantined"),
        }
        assert not other.blobs.has(gone.sha256)
    finally:
        other.close()

    # Re-adding the removed package brings its blob back, and the history still exports.
    again, added = records.add_deb(store, old_debs["libdemo"], SUITE, judge=policy.deb_reason)
    assert added and store.blobs.has(again.sha256)
    assert collect(store, grace=0).blobs_deleted == 0
    assert export_bundle(store, tmp_path / "bundle2")["blobs"] == 3
