"""``cove serve`` prints what its deployment's containers print, as they print it, and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import Server

APP = """
from cove import endpoint


@endpoint
def shout(word: str) -> dict:
    print(f"shouted {word}", flush=True)
    return {"word": word}
"""


class _Output:
    """The lines a process writes to stdout, collected by a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def finish(self) -> list[str]:
        self._thread.join(timeout=20)
        return self.seen()


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_serve_prints_the_containers_lines_as_they_come(server: Server, tmp_path: Path, as_json: bool) -> None:
    (tmp_path / "app.py").write_text(APP)
    name = f"shout-{'json' if as_json else 'human'}-{uuid.uuid4().hex[:6]}"
    word = f"w{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove", "serve", f"{tmp_path / 'app.py'}:shout", "--name", name]
        + (["--json"] if as_json else []),
        env={**server.env, "COVE_TOKEN": server.token, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output = _Output(proc)
    try:
        server.wait_for(lambda: any(name in line for line in output.seen()), timeout=120)
        with server.http() as http:
            reply = http.post(f"/endpoint/{name}", json={"word": word}, timeout=120)
        assert reply.status_code == 200, reply.text
        printed = server.wait_for(lambda: [line for line in output.seen() if f"shouted {word}" in line], timeout=30)
        assert proc.poll() is None  # seen while serve still runs, not at its end
        if as_json:
            (record,) = [json.loads(line) for line in printed]
            assert record["event"] == "log" and record["text"] == f"shouted {word}"
            assert record["deployment"] == name and record["stream"] == "stdout"
            assert record["container_id"] == reply.headers["x-cove-container"]
        else:
            assert len(printed) == 1 and reply.headers["x-cove-container"] in printed[0]
    finally:
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(timeout=30)  # stdout is the reader thread's; stderr is read below
    assert proc.stderr is not None and proc.stdout is not None
    with proc.stderr:
        stderr = proc.stderr.read()
    assert time.monotonic() - started < 10, "serve took long to stop"
    assert proc.returncode == 0, stderr
    lines = output.finish()
    proc.stdout.close()
    if as_json:
        assert json.loads(lines[-1]) == {"event": "removed", "name": name}
    else:
        assert lines[-1] == f"removed {name}"
    assert "Traceback" not in stderr, stderr
