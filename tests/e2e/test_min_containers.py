"""``min_containers`` is a floor from deploy onwards, for the newest version, and after restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conftest import Server, start_server


def _containers(server: Server, version: int) -> list[dict[str, Any]]:
    with server.http() as http:
        rows = http.get("/api/v1/containers").json()
    return [r for r in rows if r.get("deployment") == "warm" and r.get("version") == version and r.get("id")]


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_min_containers_start_at_deploy_follow_the_newest_version_and_survive_restart(
    fresh_server: Server, app_copy: Any
) -> None:
    folder: Path = app_copy("warm")
    fresh_server.deploy(f"{folder}/app.py:warm")
    # No request was made: the floor alone starts the container.
    _wait_for(lambda: any(c["state"] == "ready" for c in _containers(fresh_server, 1)), "v1's warm container")

    source = folder / "app.py"
    source.write_text(source.read_text().replace("VERSION = 1", "VERSION = 2"))
    assert fresh_server.deploy(f"{folder}/app.py:warm")["version"] == 2
    _wait_for(lambda: any(c["state"] == "ready" for c in _containers(fresh_server, 2)), "v2's warm container")
    # v1 lost its floor: its idle container stops after keep_warm_seconds.
    _wait_for(lambda: not _containers(fresh_server, 1), "v1 to scale to zero")

    port = int(fresh_server.url.rsplit(":", 1)[1])
    fresh_server.stop()
    restarted = start_server(fresh_server.home, port)
    try:
        _wait_for(lambda: any(c["state"] == "ready" for c in _containers(restarted, 2)), "v2's container after restart")
        assert not _containers(restarted, 1)
        with restarted.http() as http:
            assert http.post("/endpoint/warm", json={}).json() == {"version": 2}
    finally:
        stopping = time.monotonic()
        restarted.stop()
    # The workers' long polls are answered at once on the way down, not waited out (20 s each).
    assert time.monotonic() - stopping < 10
    # Stopping the server stops every container it started: no process still names its home.
    time.sleep(1)
    leftovers = [
        entry.name
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and str(fresh_server.home) in _cmdline(entry)
    ]
    assert not leftovers, f"processes left running after the server stopped: {leftovers}"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
