"""Scale limits, the reservoir and the workspaces pages in a real browser (Chromium), against a real server.

Set a deployment's limits from its page and find the new version and the audit entry; search the
reservoir, quarantine and release a file, approve a held import; create a workspace and set its quota.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APPS, Server

from cove.reservoir.bundle import export_bundle
from cove.reservoir.store import Store

from .browser import PHONE, Browser, serving
from .reservoir_data import fill

pytestmark = pytest.mark.e2e
APP = APPS / "basic" / "app.py"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("dashboard-admin") / "cove", f"{APP}:greet") as srv:
        yield srv


def test_set_scale_limits_from_the_deployment_page(dash: Server, browser: Browser) -> None:
    b = browser
    b.signed_in(dash.token)
    b.go("#/deployments/greet")
    b.wait_text("[data-testid=deployment-state]", "active")
    with dash.http() as http:
        before = http.get("/api/v1/deployments/greet").json()["version"]
    for key, value in (("min_containers", "1"), ("max_containers", "5")):
        field = b.find(f"[data-testid=scale-{key}]")
        field.clear()
        field.send_keys(value)
    b.find("[data-testid=scale-submit]").click()
    b.wait_text("#notice", f"v{before + 1} is live with min 1, max 5")
    with dash.http() as http:
        live = http.get("/api/v1/deployments/greet").json()
        assert live["version"] == before + 1
        assert (live["config"]["autoscaler"]["min_containers"], live["config"]["autoscaler"]["max_containers"]) == (
            1,
            5,
        )
        entry = next(e for e in http.get("/api/v1/audit").json() if e["action"] == "deployment.scale")
        assert entry["target"] == f"greet/v{before + 1}" and entry["details"]["max_containers"] == 5
    b.wait(lambda: b.find("[data-testid=scale-min_containers]").get_attribute("value") == "1", what="the new limits")
    # A refused value names what is wrong.
    field = b.find("[data-testid=scale-max_containers]")
    field.clear()
    field.send_keys("0")
    b.find("[data-testid=scale-submit]").click()
    b.wait_text("#notice", "max_containers")
    b.screenshot("deployment-scale")
    assert not [e for e in b.console_errors() if "scaling" not in e], "only the refused PATCH may be logged"


def test_search_quarantine_release_and_approve_in_the_reservoir(dash: Server, browser: Browser, tmp_path: Path) -> None:
    names = fill(dash.home / "reservoir", tmp_path / "work", "pagedemo")
    b = browser
    b.signed_in(dash.token)
    b.go("#/reservoir")
    b.wait_text("[data-testid=reservoir-projects]", "pagedemo-risky")
    search = b.find("[data-testid=reservoir-search]")
    search.send_keys("risky")
    search.submit()
    found = b.wait_text("[data-testid=reservoir-projects]", "pagedemo-risky")
    b.wait(lambda: "risky" in b.driver.execute_script("return location.hash"), what="the search in the address")
    found = b.wait_text("[data-testid=reservoir-projects]", "pagedemo-risky")
    assert "pagedemo-safe" not in found
    b.find("[data-testid=reservoir-projects] a[href='#/reservoir/pagedemo-risky']").click()
    b.wait_text("[data-testid=reservoir-files]", "PYSEC-2099-16")
    assert "Apache-2.0" in b.text("[data-testid=reservoir-files]")
    state = f"[data-testid='file-state-{names['risky']}']"
    b.wait_text(state, "active")
    b.find(f"[data-testid='quarantine-{names['risky']}']").click()
    b.accept_confirm()
    b.wait_text(state, "quarantined from the dashboard")
    b.screenshot("reservoir-project")
    with dash.http() as http:
        (row,) = http.get("/api/v1/reservoir/projects/pagedemo-risky").json()["files"]
        assert http.get(f"/reservoir/files/{row['sha256']}/{row['filename']}").status_code == 403
    b.find(f"[data-testid='release-{names['risky']}']").click()
    b.accept_confirm()
    b.wait_text(state, "active")

    # The held import is approved from the overview; its project appears.
    b.go("#/reservoir")
    b.wait_text("[data-testid=reviews]", f"#{names['review_id']}")
    b.screenshot("reservoir")
    b.screenshot("reservoir", PHONE)
    b.find(f"[data-testid=approve-{names['review_id']}]").click()
    b.accept_confirm()
    b.wait_text("[data-testid=reservoir-projects]", "pagedemo-held")
    imported = b.wait_text("[data-testid=reservoir-bundles]", "bundle.tar")
    assert f"imported {names['held_from'][:12]}" in imported and f"{names['held_serials']} " in imported, imported
    # A bundle exported from this site shows too, newest first, with the serials it spans.
    store = Store(dash.home / "reservoir")
    try:
        exported = export_bundle(store, tmp_path / "outgoing.tar")
    finally:
        store.close()
    rows = b.wait_text("[data-testid=reservoir-bundles]", "outgoing.tar").splitlines()
    assert f"exported {exported['source_id'][:12]} 0 → {exported['target_serial']} " in rows[1], rows
    assert "bundle.tar" in rows[2], rows
    b.driver.execute_script("arguments[0].scrollIntoView()", b.find("[data-testid=reservoir-bundles]"))
    b.screenshot("reservoir-bundles")
    b.go("#/reservoir-audit")
    b.wait_text("[data-testid=audit-files]", names["risky"])
    with dash.http() as http:
        actions = [e["action"] for e in http.get("/api/v1/audit").json()]
    assert {"reservoir.quarantine", "reservoir.release", "reservoir.approve"} <= set(actions)
    errors = b.console_errors()
    assert not errors, errors


def test_a_member_reads_the_reservoir_but_changes_nothing(dash: Server, browser: Browser) -> None:
    b = browser
    b.signed_in(dash.user_token("reservoir-member", "reader"))
    b.go("#/reservoir")
    b.wait_text("#page", "Projects")
    assert not b.driver.find_elements("css selector", "[data-testid=reviews], [data-testid^=quarantine-]")
    assert "Workspaces" not in b.text("#nav")
    errors = b.console_errors()
    assert not errors, errors


def test_create_a_workspace_and_set_its_quota(dash: Server, browser: Browser) -> None:
    name = f"team-{uuid.uuid4().hex[:6]}"
    b = browser
    b.signed_in(dash.token)
    b.go("#/workspaces")
    b.wait_text("[data-testid=workspaces]", "default")
    b.find("[data-testid=new-workspace]").send_keys(name)
    b.find("[data-testid=create-workspace]").click()
    token = b.wait_text("[data-testid=new-token]", "cove_")
    b.wait(lambda: b.driver.find_elements("css selector", f"[data-testid=workspace-{name}]"), what="the new workspace")
    with dash.http(token) as http:
        assert http.get("/api/v1/whoami").json()["workspace"] == name
    field = b.find(f"[data-testid=quota-{name}-max_containers]")
    field.clear()
    field.send_keys("3")
    b.find(f"[data-testid=quota-save-{name}]").click()
    b.wait_text("#notice", f"Limits of {name} saved")
    with dash.http() as http:
        quota = http.get(f"/api/v1/workspaces/{name}/quota").json()
    assert quota["max_containers"] == 3 and quota["default"] is False
    b.wait_text(f"[data-testid=workspace-{name}]", "of 3")
    b.screenshot("workspaces")
    errors = b.console_errors()
    assert not errors, errors
