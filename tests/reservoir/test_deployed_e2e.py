"""Re-audit end to end: a server builds an image from its own reservoir, an advisory arrives, the deployment is listed.

``cove server --use-reservoir`` builds the image of a deployed function from
a wheel held in its reservoir (no other index); the image's package manifest
is served at ``/api/v1/images/{id}/packages`` (to its workspace only). Then an
OSV dump naming that version is imported into the reservoir and ``cove image
audit`` lists the deployment with the advisory id, exits 1, and the
deployment gets a ``package-audit`` event; a license policy change is found
the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from conftest import Server, start_server

from .conftest import build_dist

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

APP = """
from cove import Image, function

@function(image=Image(python_packages=["cove-audit-demo==1.0"]))
def audited(x: int) -> int:
    return x
"""

ADVISORY = {
    "id": "PYSEC-2099-77",
    "summary": "cove-audit-demo 1.0 is vulnerable",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "cove-audit-demo"}, "versions": ["1.0"]}],
}


def _reservoir(home: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "cove.reservoir", *args, "--root", str(home / "reservoir")]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def reservoir_server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "cove"
    wheel = build_dist(tmp_path / "dist", "cove-audit-demo", "1.0", license="MIT")
    home.mkdir()
    _reservoir(home, "add", str(wheel))
    srv = start_server(home, None, None, "--use-reservoir")
    yield srv
    srv.stop()


def test_audit_lists_deployments_of_a_newly_flagged_package(reservoir_server: Server, tmp_path: Path) -> None:
    srv = reservoir_server
    app = tmp_path / "app" / "app.py"
    app.parent.mkdir()
    app.write_text(APP)
    srv.deploy(f"{app}:audited")
    (image,) = [row for row in srv.cli_json("image", "list") if row["deployments"]]
    image_id = image["id"]
    stored = json.loads((Path(image["path"]) / "cove-packages.json").read_text())  # written by the build itself
    assert [(p["name"], p["version"]) for p in stored["python"]] == [("cove-audit-demo", "1.0")]

    with srv.http() as http:
        reply = http.get(f"/api/v1/images/{image_id}/packages")
        assert reply.status_code == 200, reply.text
        packages = reply.json()
        assert {"name": "cove-audit-demo", "version": "1.0", "license_expression": "MIT"} in packages["python"]
        assert packages["id"] == image_id and packages["python_version"].startswith("3.")
        other = srv.user_token("audit-other")
        with srv.http(other) as stranger:
            assert stranger.get(f"/api/v1/images/{image_id}/packages").status_code == 404
            assert stranger.post("/api/v1/images/audit").status_code == 403
    shown = srv.cli_json("image", "packages", image_id[:12])
    assert shown["python"] == packages["python"]

    clean = srv.cli_json("image", "audit")
    assert clean["flagged"] == [] and clean["checked_images"] >= 1

    dump = tmp_path / "all.zip"
    with zipfile.ZipFile(dump, "w") as zf:
        zf.writestr("PYSEC-2099-77.json", json.dumps(ADVISORY))
    _reservoir(srv.home, "vulndb", "import", str(dump))

    done = srv.cli("image", "audit", "--json", check=False)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (flagged,) = report["flagged"]
    assert flagged["image_id"] == image_id
    assert [d["name"] for d in flagged["deployments"]] == ["audited"]
    (finding,) = flagged["findings"]
    assert finding["name"] == "cove-audit-demo" and finding["advisories"] == ["PYSEC-2099-77"]
    srv.env["COLUMNS"] = "200"  # the table on one line per package
    human = srv.cli("image", "audit", check=False)
    assert human.returncode == 1 and "cove-audit-demo 1.0" in human.stdout

    def audit_event() -> dict[str, object] | None:
        events = srv.cli_json("events", "audited")
        return next((e for e in events if e["kind"] == "package-audit"), None)

    event = srv.wait_for(audit_event, timeout=15)
    assert event["inputs"]["advisories"] == ["PYSEC-2099-77"]

    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["MIT"]\n')
    _reservoir(srv.home, "policy", "set", str(policy))
    report = json.loads(srv.cli("image", "audit", "--json", check=False).stdout)
    reasons = report["flagged"][0]["findings"][0]["reasons"]
    assert "license MIT is denied (MIT)" in reasons and "vulnerable (PYSEC-2099-77)" in reasons
    assert report["rules_serial"] > clean["rules_serial"]


BLOCKING_APP = """
from cove import Image, function

IMAGE = Image(python_packages=["cove-audit-demo==1.0"])

@function(image=IMAGE)
def running(x: int) -> int:
    return x + 1

@function(image=IMAGE)
def allowed(x: int) -> int:
    return x

@function(image=IMAGE)
def refused(x: int) -> int:
    return x
"""

SEVERE = {
    "id": "GHSA-2099-cove-demo",
    "summary": "cove-audit-demo 1.0 leaks secrets",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],  # 7.5: high
    "affected": [{"package": {"ecosystem": "PyPI", "name": "cove-audit-demo"}, "versions": ["1.0"]}],
}


def _bundle_with_advisory(tmp_path: Path, record: Mapping[str, object]) -> tuple[Path, Path]:
    """A connected site that loaded an OSV dump and exported it: (its bundle, its public key file)."""
    online = tmp_path / "online"
    dump = tmp_path / "severe.zip"
    with zipfile.ZipFile(dump, "w") as zf:
        zf.writestr(f"{record['id']}.json", json.dumps(record))
    run = [sys.executable, "-m", "cove.reservoir"]
    subprocess.run([*run, "vulndb", "import", str(dump), "--root", str(online)], check=True, capture_output=True)
    bundle = tmp_path / "bundle-advisories"
    subprocess.run([*run, "export", "-o", str(bundle), "--root", str(online)], check=True, capture_output=True)
    key = json.loads(
        subprocess.run([*run, "key", "--json", "--root", str(online)], check=True, capture_output=True).stdout
    )
    return bundle, Path(key["public_key"])


def test_bundle_import_reaudits_and_policy_blocks_new_deploys(reservoir_server: Server, tmp_path: Path) -> None:
    """An imported advisory flags the running deployment by itself (event, gauge, report); with ``[deploy]
    block_severity`` at or below its severity new deploys of the image are refused, and the running one runs on."""
    srv = reservoir_server
    app = tmp_path / "app" / "blocking.py"
    app.parent.mkdir()
    app.write_text(BLOCKING_APP)
    srv.deploy(f"{app}:running")
    (image,) = [row for row in srv.cli_json("image", "list") if row["deployments"]]
    clean = srv.cli_json("reservoir", "audit", "--deployed")
    assert clean["flagged"] == [] and clean["checked_images"] == 1

    bundle, key = _bundle_with_advisory(tmp_path, SEVERE)
    _reservoir(srv.home, "trust", str(key))
    _reservoir(srv.home, "import", str(bundle))

    def audit_event() -> dict[str, object] | None:  # nobody asked: the server saw the import and re-audited
        events = srv.cli_json("events", "running")
        return next((e for e in events if e["kind"] == "package-audit"), None)

    event = srv.wait_for(audit_event, timeout=30)
    assert event["inputs"]["advisories"] == ["GHSA-2099-cove-demo"]
    assert event["inputs"]["image_id"] == image["id"]
    with srv.http() as http:
        metrics = http.get("/metrics").text
    assert any(
        line.startswith("cove_flagged_deployments{") and line.endswith(" 1.0") for line in metrics.splitlines()
    ), metrics

    listed = srv.cli("reservoir", "audit", "--deployed", "--json", check=False)
    assert listed.returncode == 1, listed.stderr
    report = json.loads(listed.stdout)
    (flagged,) = report["flagged"]
    assert flagged["image_id"] == image["id"] and [d["name"] for d in flagged["deployments"]] == ["running"]
    (finding,) = flagged["findings"]
    assert (finding["name"], finding["version"]) == ("cove-audit-demo", "1.0")
    assert finding["advisories"] == ["GHSA-2099-cove-demo"] and finding["severity"] == "high"
    again = json.loads(srv.cli("image", "audit", "--json", check=False).stdout)  # the alias, the same report
    assert again == report  # nothing changed since: the kept report, not judged again
    srv.env["COLUMNS"] = "200"  # the table on one line per package
    human = srv.cli("reservoir", "audit", "--deployed", check=False)
    assert human.returncode == 1 and "1 flagged" in human.stdout, human.stdout
    assert "GHSA-2099-cove-demo" in human.stdout and "running v1" in human.stdout and "high" in human.stdout

    srv.deploy(f"{app}:allowed")  # blocking is off by default: flagged, but deployed
    policy = tmp_path / "policy.toml"
    policy.write_text('[deploy]\nblock_severity = "critical"\n')
    _reservoir(srv.home, "policy", "set", str(policy))
    srv.deploy(f"{app}:allowed")  # high is below critical

    policy.write_text('[deploy]\nblock_severity = "high"\n')
    _reservoir(srv.home, "policy", "set", str(policy))
    refused = srv.cli("deploy", f"{app}:refused", "--json", check=False)
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "cove-audit-demo 1.0" in said and "GHSA-2099-cove-demo" in said and "[deploy]" in said, said
    assert "refused" not in {d["name"] for d in srv.cli_json("deployment", "list")}

    with srv.deployed_app(app, [], "cove_blocking_app") as module:  # what runs already keeps running
        assert module.running.remote(41) == 42
    after = json.loads(srv.cli("reservoir", "audit", "--deployed", "--json", check=False).stdout)
    assert after["rules_serial"] > report["rules_serial"]  # the policy changes were judged too
    assert sorted(d["name"] for d in after["flagged"][0]["deployments"]) == ["allowed", "running"]
