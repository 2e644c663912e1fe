"""``cove events``: deploying and calling an endpoint leaves placement, start and ready events with reasons."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Server

APP = """
from cove import endpoint

@endpoint
def evt_echo(x: int = 1) -> dict:
    return {"x": x}
"""


def _events(server: Server, token: str | None = None, **params: Any) -> dict[str, Any]:
    with server.http(token) as http:
        reply = http.get("/api/v1/events", params=params)
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


def test_a_call_leaves_placement_start_and_ready_events_only_its_workspace_sees(server: Server, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    server.deploy(f"{tmp_path / 'app.py'}:evt_echo")
    with server.http() as http:
        assert http.post("/endpoint/evt-echo", json={"x": 2}).json() == {"x": 2}

    def kinds() -> dict[str, dict[str, Any]]:
        events = _events(server, deployment="evt-echo")["events"]
        return {e["kind"]: e for e in events}

    seen = server.wait_for(lambda: {"placed", "started", "ready"} <= kinds().keys() and kinds(), timeout=10)
    placed, started, ready = seen["placed"], seen["started"], seen["ready"]
    assert placed["deployment"] == "evt-echo" and placed["version"] >= 1
    assert "placed on worker local" in placed["reason"] and "worker(s) have" in placed["reason"]
    assert placed["inputs"]["worker"] == "local" and placed["inputs"]["cpu_millis"] > 0
    assert started["inputs"]["container"] == placed["inputs"]["container"] == ready["inputs"]["container"]
    assert "is ready" in ready["reason"]
    scale = seen["scale"]
    assert "in flight want 1 container(s)" in scale["reason"]
    assert scale["inputs"]["desired"] == 1 and scale["inputs"]["start"] == 1

    # A cursor returns only what came after it.
    page = _events(server, deployment="evt-echo")
    assert _events(server, deployment="evt-echo", since=page["cursor"])["events"] == []

    # The admin sees the cluster's own events; a member of another workspace sees none of these.
    assert any(e["kind"] == "worker" and e["deployment"] is None for e in _events(server, limit=1000)["events"])
    member = server.user_token("evt-other")
    theirs = _events(server, member, limit=1000)["events"]
    assert theirs == [] or all(e["deployment"] != "evt-echo" and e["deployment"] is not None for e in theirs)
    assert "evt-echo" not in json.dumps(theirs)


def test_the_cli_prints_and_follows_events(server: Server, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP.replace("evt_echo", "evt_cli"))
    server.deploy(f"{tmp_path / 'app.py'}:evt_cli")
    with server.http() as http:
        assert http.post("/endpoint/evt-cli", json={}).status_code == 200
    rows = server.wait_for(
        lambda: [e for e in server.cli_json("events", "evt-cli") if e["kind"] == "ready"], timeout=10
    )
    assert rows[0]["deployment"] == "evt-cli"
    human = server.cli("events", "evt-cli").stdout
    assert "placed" in human and "evt-cli v" in human
    # --follow keeps polling; a new version's events arrive while it runs.
    follow = subprocess.Popen(
        [sys.executable, "-m", "cove", "events", "evt-cli", "--follow", "--json", "--limit", "1"],
        env={**server.env, "COVE_TOKEN": server.token},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())
        assert first["deployment"] == "evt-cli"
        server.cli("deployment", "stop", "evt-cli")
        while True:
            event = json.loads(follow.stdout.readline())
            if event["kind"] == "exited":
                break
        assert event["inputs"]["exit_code"] is not None or event["reason"]
        assert event["inputs"]["oom"] is False
    finally:
        follow.terminate()
        follow.wait(timeout=10)
        if follow.stdout is not None:
            follow.stdout.close()
