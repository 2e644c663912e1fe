"""The reservoir through the control API: what any user reads, what only an admin changes, and the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Server

from cove.reservoir.bundle import export_bundle
from cove.reservoir.store import Store

from .reservoir_data import fill

pytestmark = pytest.mark.e2e


def test_read_search_quarantine_release_and_review(server: Server, tmp_path: Path) -> None:
    names = fill(server.home / "reservoir", tmp_path / "work", "apidemo")
    member = server.user_token("reservoir-reader", "reader")
    with server.http() as admin, server.http(member) as user:
        indexes = user.get("/api/v1/reservoir/indexes")
        assert indexes.status_code == 200, indexes.text
        assert {"pypi", "internal"} <= {i["name"] for i in indexes.json()["indexes"]}

        found = user.get("/api/v1/reservoir/projects", params={"q": "apidemo"}).json()
        assert found["total"] == 2 and [p["name"] for p in found["projects"]] == ["apidemo-risky", "apidemo-safe"]
        paged = user.get("/api/v1/reservoir/projects", params={"q": "apidemo", "limit": 1, "offset": 1}).json()
        assert paged == {"total": 2, "projects": [found["projects"][1]]}
        assert user.get("/api/v1/reservoir/projects", params={"q": "a%"}).json()["total"] == 0  # % is no wildcard

        (risky,) = user.get("/api/v1/reservoir/projects/apidemo-risky").json()["files"]
        assert (risky["filename"], risky["license"], risky["vulnerabilities"]) == (
            names["risky"],
            "Apache-2.0",
            ["PYSEC-2099-16"],
        )
        assert risky["status"] == "active"
        assert user.get("/api/v1/reservoir/projects/no-such-project").status_code == 404
        assert user.get("/api/v1/reservoir/policy").json()["advisories"] >= 1
        assert user.get("/api/v1/reservoir/stats").status_code == 200

        # A member changes nothing and sees no audit report nor held imports.
        assert user.post(f"/api/v1/reservoir/files/{names['risky']}/quarantine", json={}).status_code == 403
        assert user.get("/api/v1/reservoir/audit").status_code == 403
        assert user.get("/api/v1/reservoir/reviews").status_code == 403

        # The admin quarantines: the file is no longer served, and both audit logs say so.
        done = admin.post(f"/api/v1/reservoir/files/{names['risky']}/quarantine", json={"reason": "PYSEC-2099-16"})
        assert done.status_code == 200, done.text
        (held,) = user.get("/api/v1/reservoir/projects/apidemo-risky").json()["files"]
        assert (held["status"], held["reason"]) == ("quarantined", "PYSEC-2099-16")
        served = admin.get(f"/reservoir/files/{risky['sha256']}/{names['risky']}")
        assert served.status_code == 403 and "quarantined" in served.text
        entry = next(e for e in admin.get("/api/v1/audit").json() if e["action"] == "reservoir.quarantine")
        assert entry["target"] == names["risky"] and entry["details"]["reason"] == "PYSEC-2099-16"
        report = admin.get("/api/v1/reservoir/audit").json()
        assert any(f["filename"] == names["risky"] and f["status"] == "quarantined" for f in report["files"])
        assert admin.post(f"/api/v1/reservoir/files/{names['risky']}/release").status_code == 200
        assert admin.get(f"/reservoir/files/{risky['sha256']}/{names['risky']}").status_code == 200
        missing = admin.post("/api/v1/reservoir/files/nothing-1.0-py3-none-any.whl/release")
        assert missing.status_code == 404, missing.text

        # A held import: shown with its changes, approved once; a second decision is a conflict.
        (review,) = [r for r in admin.get("/api/v1/reservoir/reviews").json() if str(r["id"]) == names["review_id"]]
        shown = admin.get(f"/api/v1/reservoir/reviews/{review['id']}").json()
        assert [c["filename"] for c in shown["changes"]] == [names["held"]]
        assert user.get("/api/v1/reservoir/projects/apidemo-held").status_code == 404
        approved = admin.post(f"/api/v1/reservoir/reviews/{review['id']}/approve", json={"note": "looked fine"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
        assert user.get("/api/v1/reservoir/projects/apidemo-held").status_code == 200
        again = admin.post(f"/api/v1/reservoir/reviews/{review['id']}/reject", json={})
        assert again.status_code == 409, again.text

        # The approved import is listed with its serials (a held one is not, until approved); then an export.
        (imported,) = admin.get("/api/v1/reservoir/bundles").json()
        assert (imported["direction"], imported["name"], imported["base_serial"]) == ("import", "bundle.tar", 0)
        assert imported["target_serial"] == review["target_serial"] and imported["site_id"] == review["source_id"]
        assert imported["events"] >= 1
        store = Store(server.home / "reservoir")
        try:
            exported = export_bundle(store, tmp_path / "out.tar", since=3)
        finally:
            store.close()
        newest, _ = admin.get("/api/v1/reservoir/bundles").json()
        assert (newest["direction"], newest["name"]) == ("export", "out.tar")
        assert (newest["base_serial"], newest["target_serial"]) == (3, exported["target_serial"])
        assert newest["events"] == exported["events"] and newest["site_id"] == exported["source_id"]
        assert [b["name"] for b in admin.get("/api/v1/reservoir/bundles", params={"limit": 1}).json()] == ["out.tar"]
        assert user.get("/api/v1/reservoir/bundles").status_code == 403
        listed = server.cli_json("reservoir", "bundles", "--root", str(server.home / "reservoir"))
        assert [(b["direction"], b["name"]) for b in listed] == [("export", "out.tar"), ("import", "bundle.tar")]
        assert admin.post(f"/api/v1/reservoir/reviews/{review['id']}/maybe", json={}).status_code == 422
