"""Imports held for review: nothing served before approval, approve applies all at once, reject leaves no trace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cove.reservoir import keys, review
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.errors import BundleError, ReservoirConflict
from cove.reservoir.gc import collect
from cove.reservoir.policy import import_vulndb
from cove.reservoir.server import create_app
from cove.reservoir.store import Store
from cove.reservoir.watch import WatchConfig, Watcher

from .conftest import LiveServer, Wheelhouse
from .test_policy import ADVISORIES, _osv


@pytest.fixture
def sites(tmp_path: Path, wheelhouse: Wheelhouse) -> tuple[Store, Store, Path]:
    """An online site with four files exported as one bundle; a sealed site with a policy and advisories."""
    online = Store(tmp_path / "online")
    for key in ("alpha-1.0", "beta-1.0", "gamma-0.1", "delta-3.0"):
        online.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    bundle = tmp_path / "bundle.tar"
    export_bundle(online, bundle)
    sealed = Store(tmp_path / "sealed")
    keys.trust(sealed.layout, keys.public_key_file(online.layout))
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n')
    from cove.reservoir.policy import set_policy

    set_policy(sealed, policy)
    import_vulndb(sealed, _osv(tmp_path / "all.zip", ADVISORIES))
    return online, sealed, bundle


def test_hold_show_approve(sites: tuple[Store, Store, Path], wheelhouse: Wheelhouse) -> None:
    online, sealed, bundle = sites
    before = sealed.serial()
    with LiveServer(create_app(sealed.layout.root, store=sealed)) as live:
        report = import_bundle(sealed, bundle, hold=True)
        assert report.held_id is not None and report.applied_events == 0
        assert sealed.serial() == before and sealed.files() == []
        assert httpx.get(f"{live.url}/simple/cove-demo-alpha/").status_code == 404
        alpha = online.get_file(wheelhouse["alpha-1.0"].name)
        assert alpha is not None
        assert httpx.get(f"{live.url}/files/{alpha.sha256}/{alpha.filename}").status_code == 404

        (held,) = review.listing(sealed)
        assert held["id"] == report.held_id and held["summary"]["kinds"] == {"file_added": 4}
        shown = review.show(sealed, report.held_id)
        by_project = {c["project"]: c for c in shown["changes"]}
        assert by_project["cove-demo-alpha"]["license"] == "MIT"
        assert by_project["cove-demo-beta"]["advisories"] == ["PYSEC-2099-1"]
        assert by_project["cove-demo-gamma"]["advisories"] == ["MAL-2099-7"]
        assert any("GPL-3.0-only" in r for r in by_project["cove-demo-delta"]["policy"])

        # The same bundle again is already held; the review's blobs survive gc while it waits.
        with pytest.raises(ReservoirConflict, match="already held for review"):
            import_bundle(sealed, bundle, hold=True)
        assert collect(sealed, grace=0).blobs_deleted == 0

        done = review.approve(sealed, report.held_id, note="reviewed")
        assert done["status"] == "approved" and done["import"]["applied_events"] == 4
        assert sealed.serial() == before + 4
        assert {f.filename for f in sealed.files()} == {f.filename for f in online.files()}
        assert httpx.get(f"{live.url}/simple/cove-demo-alpha/").status_code == 200
        assert (
            httpx.get(f"{live.url}/files/{alpha.sha256}/{alpha.filename}").content
            == wheelhouse["alpha-1.0"].read_bytes()
        )
    with pytest.raises(ReservoirConflict, match="already approved"):
        review.approve(sealed, report.held_id)
    assert import_bundle(sealed, bundle).already_imported


def test_reject_leaves_only_the_audit_entry(sites: tuple[Store, Store, Path]) -> None:
    _, sealed, bundle = sites
    before = sealed.serial()
    blobs_before = sorted(p.name for p in sealed.blobs.root.rglob("*") if p.is_file())
    held = import_bundle(sealed, bundle, hold=True).held_id
    assert held is not None
    assert len([p for p in sealed.blobs.root.rglob("*") if p.is_file()]) > len(blobs_before)
    result = review.reject(sealed, held, note="not today")
    assert result["status"] == "rejected" and result["blobs_deleted"] > 0
    assert sealed.serial() == before and sealed.files() == []
    assert sorted(p.name for p in sealed.blobs.root.rglob("*") if p.is_file()) == blobs_before
    (entry,) = review.listing(sealed, everything=True)
    assert entry["status"] == "rejected" and entry["note"] == "not today" and entry["decided"]
    assert review.listing(sealed) == []
    # Rejected, the bundle can come again.
    assert import_bundle(sealed, bundle).applied_events == 4


def test_next_bundle_waits_for_the_decision(
    sites: tuple[Store, Store, Path], tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    online, sealed, bundle = sites
    base = online.serial()
    online.add_file(wheelhouse["beta-2.0"], wheelhouse["beta-2.0"].name, origin="test")
    delta = tmp_path / "delta"
    export_bundle(online, delta, since=base)
    held = import_bundle(sealed, bundle, hold=True).held_id
    with pytest.raises(BundleError, match="is held for review"):
        import_bundle(sealed, delta)
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copytree(delta, drop / "delta")
    watcher = Watcher(sealed, WatchConfig(drop, settle=1.0, hold=True))
    assert watcher.scan(now=0) == [] and watcher.scan(now=5) == []
    assert "held for review" in watcher.waiting()["delta"]
    assert held is not None
    review.approve(sealed, held)
    (outcome,) = watcher.scan(now=10)
    assert outcome["status"] == "held for review"
    (second,) = review.listing(sealed)
    assert second["base_serial"] == base
    review.approve(sealed, second["id"])
    assert sealed.get_file(wheelhouse["beta-2.0"].name) is not None


def test_review_cli(sites: tuple[Store, Store, Path]) -> None:
    _, sealed, bundle = sites
    root = str(sealed.layout.root)
    sealed.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cove.reservoir", *args, "--root", root], capture_output=True, text=True
        )

    held = json.loads(cli("import", str(bundle), "--hold", "--json").stdout)
    assert held["held_id"] == 1
    listed = json.loads(cli("review", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [1]
    shown = cli("review", "show", "1")
    assert shown.returncode == 0 and "PYSEC-2099-1" in shown.stdout and "MIT" in shown.stdout
    assert json.loads(cli("review", "show", "1", "--json").stdout)["changes"][0]["kind"] == "file_added"
    missing = cli("review", "approve", "7")
    assert missing.returncode == 1 and "no held import #7" in missing.stderr
    approved = json.loads(cli("review", "approve", "1", "--note", "ok", "--json").stdout)
    assert approved["status"] == "approved"
    again = cli("review", "reject", "1")
    assert again.returncode == 1 and "already approved" in again.stderr
