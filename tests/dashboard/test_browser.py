"""The dashboard in a real browser (Chromium) against a real server with real containers.

Sign in with a token, see a deployed app, follow its log, stop it from the page and find the stop in
the audit log, sign out and find the cookie dead; a member sees nothing of another workspace; a
wrong token gets a clear message; text a user controls is shown as text, never run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server

from .browser import PHONE, Browser, serving

APP = APPS / "basic" / "app.py"
POLL_SECONDS = 5.0  # how often the pages polled every list before they were pushed changes
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own (the tests stop its deployments), with two endpoints deployed."""
    with serving(tmp_path_factory.mktemp("dashboard") / "cove", f"{APP}:greet", f"{APP}:add") as srv:
        yield srv


def test_a_wrong_token_is_refused_with_a_clear_message(browser: Browser) -> None:
    browser.sign_in("cove_not-a-real-token")
    message = browser.wait_text("#signin-error", "not valid")
    assert "mistyped or revoked" in message
    assert not browser.find("#shell").is_displayed()
    assert browser.driver.get_cookie("cove_session") is None


def test_sign_in_follow_a_log_stop_from_the_page_audit_and_sign_out(dash: Server, browser: Browser) -> None:
    b = browser
    b.sign_in(dash.token)
    b.wait_text("[data-testid=workspace-name]", "default")
    cookie = b.driver.get_cookie("cove_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert "cove_session" not in b.driver.execute_script("return document.cookie")  # out of scripts' reach
    # The overview counts the deployments by kind and state.
    b.wait_text(".grid", "endpoint")
    b.wait_text(".grid", "Running")
    b.screenshot("overview")

    b.go("#/deployments")
    b.wait_text("[data-testid=deployments]", "greet")
    b.find("[data-testid=deployments] a[href='#/deployments/greet']").click()
    b.wait_text("[data-testid=deployment-state]", "active")
    assert b.text("[data-testid=deployment-url]").endswith("/endpoint/greet")

    # A call's log line arrives in the open page; its markup stays text.
    tag = f"dash-{uuid.uuid4().hex[:8]}"
    hostile = f'{tag} <img src=x onerror="document.body.dataset.owned=1"><script>document.body.dataset.owned=1</script>'
    with dash.http() as http:
        reply = http.post("/endpoint/greet", json={"name": hostile})
        assert reply.status_code == 200, reply.text
    line = b.wait_text("[data-testid=log]", tag, timeout=60)
    assert "<img src=x" in line and "<script>" in line
    assert not b.driver.find_elements("css selector", "[data-testid=log] img, [data-testid=log] script")
    assert b.driver.execute_script("return document.body.dataset.owned") is None
    # The call is counted in the hour's history (read every 10 s) and drawn in the requests chart.
    history = b.wait(lambda: _counted(b, "greet"), 40, "the call in the deployment's history")
    assert sum(history["cold_starts"]) >= 1 and any(v is not None for v in history["p50_ms"])
    peak = b.wait(lambda: float(b.find("[data-testid=chart-requests]").get_attribute("data-peak") or 0) or None,
                  20, "the call in the requests chart")  # fmt: skip
    assert peak == max(history["requests_per_second"])
    assert b.driver.find_elements("css selector", "[data-testid=chart-requests] :is(polyline, circle)")
    b.screenshot("deployment")
    b.driver.execute_script("arguments[0].scrollIntoView()", b.find("[data-testid=history]"))
    b.screenshot("deployment-charts")
    b.screenshot("deployment", PHONE)

    # Stop it from the page: the state changes and the audit log has the stop, under the token's id.
    b.find("[data-testid=stop]").click()
    b.accept_confirm()
    b.wait_text("[data-testid=deployment-state]", "stopped")
    with dash.http() as http:
        assert http.get("/api/v1/deployments").json() == [
            d for d in http.get("/api/v1/deployments").json() if d["name"] != "greet"
        ]
        token_id = http.get("/api/v1/whoami").json()["token_id"]
    b.go("#/audit")
    audit = b.wait_text("[data-testid=audit]", "deployment.stop")
    assert any("deployment.stop" in row and "greet" in row and token_id in row for row in audit.splitlines())
    b.screenshot("audit")

    errors = b.console_errors()
    assert not errors, errors

    # Sign out: the form is back, and the cookie no longer opens the API.
    b.find("#signout").click()
    b.wait(lambda: b.find("#signin").is_displayed(), what="the sign-in form")
    stale = httpx.get(f"{dash.url}/api/v1/whoami", headers={"Cookie": f"cove_session={cookie['value']}"})
    assert stale.status_code == 401, stale.text


def test_a_deploy_appears_in_the_open_overview_by_push(dash: Server, browser: Browser) -> None:
    """The overview holds the change stream open and does not poll meanwhile: the new version came by push,
    sooner than the 5 s the pages polled at before."""
    b = browser
    b.signed_in(dash.token)
    b.wait(lambda: b.driver.execute_script("return document.body.dataset.live") == "push", 20, "the change stream")
    with dash.http() as http:
        rows = http.get("/api/v1/deployments").json()
    active = sum(1 for d in rows if (d["kind"], d["state"]) == ("endpoint", "active"))
    b.wait_text("[data-testid=overview-deployments]", f"endpoint active {active}")
    b.driver.execute_script("delete document.body.dataset.refreshed")
    dash.deploy(f"{APP}:brief")
    deployed = time.monotonic()
    b.wait_text("[data-testid=overview-deployments]", f"endpoint active {active + 1}", timeout=20)
    shown_after = time.monotonic() - deployed
    assert b.driver.execute_script("return document.body.dataset.refreshed") == "push"
    assert shown_after < POLL_SECONDS, f"shown {shown_after:.1f} s after the deploy"
    assert b.driver.execute_script("return document.body.dataset.live") == "push"
    b.go("#/deployments")
    b.wait_text("[data-testid=deployments]", "brief")
    errors = b.console_errors()
    assert not errors, errors


def _counted(b: Browser, name: str) -> dict[str, Any] | None:
    """The deployment's history as the page reads it, once it counts a request."""
    got = b.fetch_json(f"/api/v1/deployments/{name}/history")
    assert got["status"] == 200, got
    history: dict[str, Any] = got["body"]
    return history if sum(history["requests_per_second"]) > 0 else None


def test_a_member_sees_nothing_of_another_workspace(dash: Server, browser: Browser) -> None:
    member = dash.user_token("team-b", "browser-member")
    b = browser
    b.sign_in(member)
    b.wait_text("[data-testid=workspace-name]", "team-b")
    assert not b.find("#workspace").is_displayed()  # only an admin switches workspaces
    nav = b.text("#nav")
    assert "Workers" not in nav and "Audit" not in nav
    b.go("#/deployments")
    b.wait_text("#page", "No deployments yet")
    assert "add" not in b.text("#page").split()
    b.go("#/deployments/add")
    b.wait_text("#page", "no deployment named add")
    # The API calls the pages make answer for the member's workspace only.
    assert b.fetch_json("/api/v1/deployments") == {"status": 200, "body": []}
    assert b.fetch_json("/api/v1/logs?target=add")["status"] == 404
    assert b.fetch_json("/api/v1/containers") == {"status": 200, "body": []}
    assert b.fetch_json("/api/v1/workers")["status"] == 403
    assert b.fetch_json("/api/v1/deployments/add/history")["status"] == 404
    b.go("#/overview")
    b.wait_text(".grid", "No deployments yet")
    b.screenshot("overview-member", PHONE)


def test_an_admin_switches_workspace_in_the_page(dash: Server, browser: Browser) -> None:
    dash.user_token("team-c", "switch-target")
    b = browser
    b.sign_in(dash.token)
    b.wait_text("[data-testid=workspace-name]", "default")
    b.go("#/deployments")
    b.wait_text("[data-testid=deployments]", "add")
    picker = b.find("#workspace")
    assert picker.is_displayed()
    from selenium.webdriver.support.ui import Select

    Select(picker).select_by_visible_text("team-c")
    b.wait_text("[data-testid=workspace-name]", "team-c")
    b.go("#/deployments")
    b.wait_text("#page", "No deployments yet")
    errors = b.console_errors()
    assert not errors, errors


CHATTY = APPS / "chatty" / "app.py"


def test_a_failed_task_is_found_with_its_traceback_and_the_list_pages(dash: Server, browser: Browser) -> None:
    tag = 'boom <img src=x onerror="document.body.dataset.owned=1">'
    with dash.deployed_app(CHATTY, ("chatty_fails", "chatty_quiet"), "dashboard_chatty") as chatty:
        with pytest.raises(ValueError, match="boom"):
            chatty.chatty_fails.remote(tag)
        assert list(chatty.chatty_quiet.map(range(60))) == list(range(1, 61))
    with dash.http() as http:
        first = http.get("/api/v1/tasks", params={"limit": 50}).json()
        second = http.get("/api/v1/tasks", params={"limit": 50, "offset": 50}).json()
        assert len(first) == 50 and second, "more than one page of tasks"
        assert not {t["id"] for t in first} & {t["id"] for t in second}
        failed = http.get("/api/v1/tasks", params={"state": "FAILED", "name": "chatty-fails"}).json()
    assert failed and failed[0]["error"]["type"] == "ValueError"
    b = browser
    b.sign_in(dash.token)
    b.wait_text("[data-testid=workspace-name]", "default")
    b.go("#/tasks")
    b.wait_text("[data-testid=tasks]", "chatty-quiet")
    b.find("[data-testid=next]").click()
    b.wait_text("#page", "Page 2")
    b.go("#/tasks?state=FAILED&name=chatty-fails")
    b.wait_text("[data-testid=tasks]", "chatty-fails")
    b.find(f"[data-testid=tasks] a[href='#/tasks/{failed[0]['id']}']").click()
    b.wait_text("[data-testid=task-state]", "FAILED")
    assert "ValueError" in b.wait_text("[data-testid=task-error]", "boom")
    assert "raise ValueError(tag)" in b.text("[data-testid=traceback]")
    assert not b.driver.find_elements("css selector", "#page img")
    assert b.driver.execute_script("return document.body.dataset.owned") is None
    b.screenshot("task")

    # Retry it from the page: a new task runs the same input (and fails the same way), audited.
    b.find("[data-testid=retry]").click()
    b.accept_confirm()
    retried = b.wait(lambda: _shown_task(b, failed[0]["id"]), what="the retried task's page")
    b.wait_text("[data-testid=task-state]", "FAILED", timeout=60)
    assert "boom" in b.wait_text("[data-testid=task-error]", "ValueError")
    with dash.http() as http:
        entry = next(e for e in http.get("/api/v1/audit").json() if e["action"] == "task.retry")
    assert entry["target"] == failed[0]["id"] and entry["details"]["task_id"] == retried
    # The CLI retries the same way.
    again = dash.cli_json("task", "retry", retried)
    assert again["retried_from"] == retried and again["task_id"] not in (retried, failed[0]["id"])
    errors = b.console_errors()
    assert not errors, errors


def _shown_task(b: Browser, other_than: str) -> str | None:
    """The id of the task the page shows, once it is not ``other_than``."""
    shown = b.driver.execute_script("return location.hash").removeprefix("#/tasks/")
    return shown if shown and shown != other_than and "/" not in shown and b.text("[data-testid=task-state]") else None


def test_upload_into_a_volume_run_a_command_in_a_sandbox_and_collect_images(
    dash: Server, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cove import Sandbox

    volume = f"dash-{uuid.uuid4().hex[:6]}"
    with dash.http() as http:
        assert http.post("/api/v1/volumes", json={"name": volume}).status_code == 201
    local = tmp_path / "weights <b>.txt"
    local.write_bytes(b"uploaded from the browser\n")
    monkeypatch.setenv("COVE_GATEWAY", dash.url)
    monkeypatch.setenv("COVE_TOKEN", dash.token)
    sandbox = Sandbox(timeout=180).create()
    try:
        b = browser
        b.sign_in(dash.token)
        b.wait_text("[data-testid=workspace-name]", "default")
        # Upload a file into the volume: it lands under its own name, and the listing shows it.
        b.go(f"#/volumes?volume={volume}")
        b.wait(lambda: b.find("[data-testid=upload-files]").is_displayed(), what="the upload form")
        b.find("[data-testid=upload-files]").send_keys(str(local))
        b.find("[data-testid=upload]").click()
        b.wait_text("#page", local.name)
        with dash.http() as http:
            stored = http.get(f"/api/v1/volumes/{volume}/files/{local.name}")
            assert stored.status_code == 200 and stored.content == local.read_bytes()
        b.screenshot("volume")

        # Run a command in the sandbox: its exit code, stdout and stderr, shown as text.
        b.go("#/sandboxes")
        b.wait_text("[data-testid=sandboxes]", sandbox.object_id or "")
        b.find("[data-testid=exec-command]").send_keys(
            """sh -c 'echo "<img src=x onerror=document.body.dataset.owned=1>"; echo oops >&2; exit 3'"""
        )
        b.find("[data-testid=exec-command]").submit()
        assert b.wait_text("[data-testid=exec-exit]", "3", timeout=60) == "3"
        assert b.text("[data-testid=exec-stdout]") == "<img src=x onerror=document.body.dataset.owned=1>"
        assert b.text("[data-testid=exec-stderr]") == "oops"
        assert not b.driver.find_elements("css selector", "#page img")
        assert b.driver.execute_script("return document.body.dataset.owned") is None
        b.screenshot("sandboxes")

        # An admin collects unused images from the images page.
        b.go("#/images")
        b.wait_text("[data-testid=images]", "3.")
        b.find("[data-testid=gc]").click()
        b.accept_confirm()
        b.wait_text("#notice", "freed")
        b.screenshot("images")
        errors = b.console_errors()
        assert not errors, errors
    finally:
        sandbox.terminate()
