"""Sandboxes end to end, including attempts to break out of one.

Network checks only talk to a server this test runs on 127.0.0.1; "no
network" is shown by the sandbox never reaching it and having only ``lo``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import Server

from cove import Sandbox
from cove.exceptions import ResponseError

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("crun") is None or os.geteuid() != 0, reason="sandboxes need crun and root"),
]


def test_exec_run_code_and_exit_codes(sandbox: Sandbox) -> None:
    assert sandbox.object_id and sandbox.object_id.startswith("sb-")
    done = sandbox.process.exec("sh", "-c", "echo out; echo err >&2; exit 3", timeout=30)
    assert (done.exit_code, done.stdout, done.stderr, done.result) == (3, "out\n", "err\n", "out\nerr\n")
    code = sandbox.process.run_code("import sys; print(sum(range(10))); sys.exit(0)")
    assert code.stdout == "45\n" and code.exit_code == 0
    # wait=False: the running process, its output streamed as it comes
    streamed = sandbox.process.exec("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done", wait=False)
    chunks = list(streamed.stdout)
    assert "".join(chunks) == "1\n2\n3\n" and len(chunks) >= 2 and streamed.wait() == 0
    proc = sandbox.process.exec("sh", "-c", "echo out; echo err >&2; exit 3", wait=False)
    assert proc.wait(timeout=30) == 3
    assert proc.stdout.read() == "out\n" and proc.stderr.read() == "err\n"
    env = sandbox.process.exec("sh", "-c", "echo $GREETING; pwd", env={"GREETING": "hi"})
    assert env.stdout == "hi\n/cove/work\n"
    sandbox.fs.write_text("sub/keep", "")
    assert sandbox.process.run_code("import os; print(os.getcwd())", cwd="sub").stdout == "/cove/work/sub\n"


def test_wait_timeout_and_kill(sandbox: Sandbox) -> None:
    proc = sandbox.process.exec("sleep", "60", wait=False)
    with pytest.raises(TimeoutError):
        proc.wait(timeout=1)
    proc.kill()
    assert proc.wait(timeout=10) == -9
    # A waiting exec past its timeout kills the command, as subprocess.run does.
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sandbox.process.run_code("import time; time.sleep(60)", timeout=2)
    assert time.monotonic() - started < 30
    listing = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        print(open(f"/proc/{pid}/cmdline").read())
    except OSError:
        pass
"""
    assert "time.sleep(60)" not in sandbox.process.run_code(listing).stdout


def test_fs_round_trip_and_traversal(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.fs.write_text("notes/a.txt", "hello")
    assert sandbox.fs.read_text("notes/a.txt") == "hello"
    assert sandbox.fs.read_text("/cove/work/notes/a.txt") == "hello"
    assert [f["name"] for f in sandbox.fs.list_files("notes")] == ["a.txt"]
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(100_000))
    sandbox.fs.upload_file(str(local), "up.bin")
    assert sandbox.process.exec("sha256sum", "up.bin").stdout.split()[0]
    sandbox.fs.download_file("up.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == local.read_bytes()
    sandbox.fs.remove("notes", recursive=True)
    assert "notes" not in [f["name"] for f in sandbox.fs.list_files()]
    for bad in ("../escape", "/etc/passwd", "a/../../b", "/cove/code/x"):
        with pytest.raises(ResponseError) as info:
            sandbox.fs.write_text(bad, "x")
        assert info.value.status == 400, bad
        with pytest.raises(ResponseError) as info:
            sandbox.fs.read_text(bad)
        assert info.value.status == 400, bad
    # A symlink the sandboxed code plants does not lead the agent out.
    assert sandbox.process.exec("ln", "-s", "/etc", "link").exit_code == 0
    with pytest.raises(ResponseError) as info:
        sandbox.fs.read_text("link/hostname")
    assert info.value.status == 400
    with pytest.raises(ResponseError):
        sandbox.fs.download_file("link/passwd", str(tmp_path / "p"))
    assert not (tmp_path / "p").exists()


def test_escape_attempts_fail(sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        probe = sandbox.process.run_code(
            f"""
import os, socket
def attempt(f):
    try:
        return repr(f())
    except Exception as exc:
        return type(exc).__name__
print("shadow", attempt(lambda: open("/etc/shadow").read()))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("tcp", attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)))
print("ifaces", sorted(name for _, name in socket.if_nameindex()))
print("rootwrite", attempt(lambda: open("/usr/evil", "w")))
print("etcwrite", attempt(lambda: open("/etc/evil", "w")))
"""
        )
        out = probe.stdout
        assert probe.exit_code == 0, probe.stderr
    finally:
        stop.set()
        thread.join()
        listener.close()
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert lines["shadow"] in ("FileNotFoundError", "PermissionError")
    pids = [int(p) for p in lines["pids"].strip("[]").split(",")]
    assert max(pids) < 100  # its own namespace: the agent (pid 1) and its children only
    assert lines["tcp"] in ("ConnectionRefusedError", "OSError", "TimeoutError")
    assert lines["ifaces"] == "['lo']"
    assert lines["rootwrite"] in ("OSError", "PermissionError")
    assert lines["etcwrite"] in ("OSError", "PermissionError")
    assert accepted == []
    assert not Path("/usr/evil").exists() and not Path("/etc/evil").exists()


def test_connect_list_terminate_and_cli(server: Server, sandbox: Sandbox) -> None:
    assert sandbox.object_id
    again = Sandbox.connect(sandbox.object_id)
    again.fs.write_text("shared.txt", "seen by both")
    assert sandbox.fs.read_text("shared.txt") == "seen by both"
    assert sandbox.object_id in [r["id"] for r in server.cli_json("sandbox", "list")]
    done = server.cli("sandbox", "exec", sandbox.object_id, "--", "sh", "-c", "cat shared.txt; exit 4", check=False)
    assert done.returncode == 4 and done.stdout == "seen by both"
    result = json.loads(server.cli("sandbox", "exec", "--json", sandbox.object_id, "--", "echo", "hi").stdout)
    assert result == {"exit_code": 0, "stdout": "hi\n", "stderr": ""}
    other = server.cli_json("token", "create", "--workspace", "team-sandbox")["token"]
    assert server.cli("sandbox", "terminate", sandbox.object_id, token=other, check=False).returncode != 0
    server.cli_json("sandbox", "terminate", sandbox.object_id)
    with pytest.raises(ResponseError) as info:
        sandbox.fs.read_text("shared.txt")
    assert info.value.status == 404
    assert sandbox.object_id not in [r["id"] for r in server.cli_json("sandbox", "list")]


def test_idle_timeout_ends_a_sandbox(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_GATEWAY", server.url)
    monkeypatch.setenv("COVE_TOKEN", server.token)
    sb = Sandbox(timeout=60, idle_timeout=2).create()
    assert sb.process.exec("true").exit_code == 0
    time.sleep(4)
    with pytest.raises(ResponseError) as info:
        sb.process.exec("true")
    assert info.value.status == 404
    with pytest.raises(ResponseError) as info:
        Sandbox(network=True).create()
    assert info.value.status == 422
