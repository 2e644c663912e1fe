"""A ``cove logs --follow`` or a dashboard's change stream left open never holds a server's shutdown back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from conftest import Server, start_server

APP = """
from cove import endpoint

@endpoint
def lfs_echo(word: str) -> dict:
    print(f"printed {word}", flush=True)
    return {"word": word}
"""


def _stop_seconds(server: Server) -> float:
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(timeout=60)
    return time.monotonic() - started


def _quiet_stop_seconds(tmp_path: Path) -> float:
    """How long a server that served a call stops in, with nothing left open."""
    (tmp_path / "app.py").write_text(APP)
    quiet = start_server(tmp_path / "quiet", None, None)
    try:
        quiet.deploy(f"{tmp_path / 'app.py'}:lfs_echo")
        with quiet.http() as http:
            assert http.post("/endpoint/lfs-echo", json={"word": "a"}).status_code == 200
    finally:
        baseline = _stop_seconds(quiet)
        quiet.stop()
    return baseline


def test_a_follow_left_open_does_not_hold_the_shutdown_back(tmp_path: Path) -> None:
    baseline = _quiet_stop_seconds(tmp_path)

    server = start_server(tmp_path / "cove", None, None)
    follower = None
    try:
        server.deploy(f"{tmp_path / 'app.py'}:lfs_echo")
        follower = subprocess.Popen(
            [sys.executable, "-m", "cove", "logs", "lfs-echo", "--follow", "--json"],
            env={**server.env, "COVE_TOKEN": server.token},
            stdout=subprocess.PIPE,
            text=True,
        )
        with server.http() as http:
            assert http.post("/endpoint/lfs-echo", json={"word": "followed"}).status_code == 200
        assert follower.stdout is not None
        deadline = time.monotonic() + 20
        seen: list[str] = []
        while time.monotonic() < deadline and not any("printed followed" in line for line in seen):
            seen.append(follower.stdout.readline())
        assert any(json.loads(line)["text"] == "printed followed" for line in seen if line.strip())
        took = _stop_seconds(server)  # the follow is still open
        # Within a second of a shutdown with nobody following (its graceful wait would add 5 s).
        assert took < baseline + 1.0, (took, baseline)
        follower.wait(timeout=20)  # and the follower ends when its server is gone
    finally:
        if follower is not None:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
            if follower.stdout is not None:
                follower.stdout.close()
        server.stop()


def test_the_change_stream_names_what_changed_and_ends_with_the_server(tmp_path: Path) -> None:
    baseline = _quiet_stop_seconds(tmp_path)
    server = start_server(tmp_path / "cove", None, None)
    events: list[tuple[str, str]] = []
    ended = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {server.token}"}
        try:
            with httpx.stream("GET", f"{server.url}/api/v1/changes", headers=headers, timeout=60) as answer:
                assert answer.headers["content-type"].startswith("text/event-stream")
                kind = ""
                for line in answer.iter_lines():
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: "):
                        events.append((kind, line[len("data: ") :]))
        finally:
            ended.set()

    reader = threading.Thread(target=listen, daemon=True)
    try:
        reader.start()
        server.wait_for(lambda: events, timeout=20)
        assert events[0][0] == "ready" and json.loads(events[0][1])["topics"] == [
            "containers", "deployments", "events", "tasks"
        ]  # fmt: skip
        server.deploy(f"{tmp_path / 'app.py'}:lfs_echo")
        changed = server.wait_for(
            lambda: [json.loads(data)["topics"] for kind, data in events if kind == "change"], timeout=20
        )
        assert "deployments" in changed[0], changed
        with server.http() as http:  # a container starts and becomes ready: its kind is named too
            assert http.post("/endpoint/lfs-echo", json={"word": "b"}).status_code == 200
        server.wait_for(
            lambda: any("containers" in json.loads(d)["topics"] for k, d in events if k == "change"), timeout=20
        )
        took = _stop_seconds(server)  # the stream is still open
        assert took < baseline + 1.0, (took, baseline)
        assert ended.wait(10)  # and it ended with its server
    finally:
        server.stop()
