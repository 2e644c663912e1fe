"""A ``cove logs --follow`` left open never holds a server's shutdown back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_follow_left_open_does_not_hold_the_shutdown_back(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    quiet = start_server(tmp_path / "quiet", None, None)
    try:
        quiet.deploy(f"{tmp_path / 'app.py'}:lfs_echo")
        with quiet.http() as http:
            assert http.post("/endpoint/lfs-echo", json={"word": "a"}).status_code == 200
    finally:
        baseline = _stop_seconds(quiet)
        quiet.stop()

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
