"""The process runtime: process groups, descriptors, environment, timings."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import cove
from cove.runtime import LaunchSpec, ProcessRuntime, StartError, open_unix_listener
from cove.runtime._process import ProcessHandle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("rt-image")
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(base / "venv")], check=True)
    (base / "pylib").mkdir()
    (base / "pylib" / "cove").symlink_to(Path(cove.__file__).parent)
    return base / "venv", base / "pylib"


def _spec(tmp_path: Path, image: tuple[Path, Path], code: str, **changes: Any) -> LaunchSpec:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text(textwrap.dedent(code))
    venv, pylib = image
    spec = LaunchSpec(
        container_id="rt-1",
        python=venv / "bin" / "python",
        venv=venv,
        code_dir=code_dir,
        work_dir=tmp_path / "work",
        pylib_dir=pylib,
        module="app",
        function="handler",
        env={"GREETING": "hi"},
    )
    return dataclasses.replace(spec, **changes)


async def _start(spec: LaunchSpec, sock: Path) -> ProcessHandle:
    listener = open_unix_listener(sock)
    try:
        return await ProcessRuntime().start(spec, listener)
    finally:
        listener.close()


async def _drained(handle: ProcessHandle, code: int) -> int:
    """``code``, once the runner's pipes were read to their end (as the worker's log pumps do).

    A pipe left unread keeps its transport open past the event loop, which
    Python reports, at a random later garbage collection, as an unclosed transport.
    """
    await asyncio.wait_for(asyncio.gather(handle.stdout.read(), handle.stderr.read(), handle._ready_reader.read()), 10)
    return code


async def _call(sock: Path, body: bytes = b"{}") -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(b"POST /invoke HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    reply = await reader.read()
    writer.close()
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply
    result: dict[str, object] = json.loads(payload)
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): treat it as dead.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


GRANDCHILD = """
    import os, subprocess
    child = subprocess.Popen(["sleep", "300"])
    def handler():
        return {"grandchild": child.pid}
"""


def test_stop_kills_the_whole_process_group(tmp_path: Path, image: tuple[Path, Path]) -> None:
    async def scenario() -> tuple[int, int]:
        handle = await _start(_spec(tmp_path, image, GRANDCHILD), tmp_path / "s.sock")
        assert await handle.wait_ready()
        grandchild = int(str((await _call(tmp_path / "s.sock"))["grandchild"]))
        assert _alive(grandchild)
        return await _drained(handle, await handle.stop(grace=5)), grandchild

    code, grandchild = asyncio.run(scenario())
    assert code == 0
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)


def test_runner_exit_takes_its_children_along(tmp_path: Path, image: tuple[Path, Path]) -> None:
    async def scenario() -> tuple[int, int]:
        sock = tmp_path / "s.sock"
        handle = await _start(_spec(tmp_path, image, GRANDCHILD), sock)
        grandchild = int(str((await _call(sock))["grandchild"]))
        os.kill(handle.pid, 9)  # only the runner dies; its child must not survive it
        return await _drained(handle, await handle.wait()), grandchild

    exit_code, grandchild = asyncio.run(scenario())
    assert exit_code == -9
    time.sleep(0.1)
    assert not _alive(grandchild)


def test_stuck_call_means_sigkill_after_grace(tmp_path: Path, image: tuple[Path, Path]) -> None:
    code = """
        import time
        def handler():
            time.sleep(60)
    """

    async def scenario() -> tuple[int, float]:
        handle = await _start(_spec(tmp_path, image, code, env={"COVE_DRAIN_SECONDS": "30"}), tmp_path / "s.sock")
        call = asyncio.ensure_future(_call(tmp_path / "s.sock"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        exit_code = await handle.stop(grace=0.3)
        elapsed = time.monotonic() - started
        call.cancel()
        return await _drained(handle, exit_code), elapsed

    exit_code, elapsed = asyncio.run(scenario())
    assert exit_code == -9
    assert 0.25 <= elapsed < 3


def test_environment_descriptors_and_timings(tmp_path: Path, image: tuple[Path, Path]) -> None:
    code = """
        import os
        AT_IMPORT = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                AT_IMPORT[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass  # the descriptor listdir itself used
        def handler():
            return {"env": dict(os.environ), "fds": AT_IMPORT,
                    "cwd": os.getcwd(), "pgid": os.getpgid(0), "pid": os.getpid()}
    """
    os.environ["COVE_TEST_SHOULD_NOT_LEAK"] = "1"
    secret = open(tmp_path / "worker-private-file", "w")  # noqa: SIM115 - must stay open during the start

    async def scenario() -> tuple[dict[str, object], dict[str, float]]:
        handle = await _start(_spec(tmp_path, image, code), tmp_path / "s.sock")
        assert await handle.wait_ready()
        result = await _call(tmp_path / "s.sock")
        await _drained(handle, await handle.stop(2))
        return result, dict(handle.timings)

    try:
        result, timings = asyncio.run(scenario())
    finally:
        del os.environ["COVE_TEST_SHOULD_NOT_LEAK"]
        secret.close()
    env = result["env"]
    assert isinstance(env, dict)
    venv, pylib = image
    assert "COVE_TEST_SHOULD_NOT_LEAK" not in env
    assert env["PATH"].split(":")[0] == str(venv / "bin")
    assert env["VIRTUAL_ENV"] == str(venv)
    assert env["PYTHONPATH"] == str(pylib)
    assert env["HOME"] == str(tmp_path / "work")
    assert env["GREETING"] == "hi"
    assert env["COVE_CONTAINER_ID"] == "rt-1"
    assert result["cwd"] == str(tmp_path / "work")
    assert result["pgid"] == result["pid"]  # its own process group (and session)
    fds = result["fds"]
    assert isinstance(fds, dict)
    assert fds["0"] == "/dev/null"
    assert fds["1"].startswith("pipe:") and fds["2"].startswith("pipe:") and fds["4"].startswith("pipe:")
    assert fds["3"].startswith("socket:")
    assert not any("worker-private-file" in target for target in fds.values())
    assert 0 < timings["spawn_ms"] < timings["ready_ms"]


def test_missing_interpreter_is_a_start_error(tmp_path: Path, image: tuple[Path, Path]) -> None:
    spec = _spec(tmp_path, image, "def handler(): pass\n", python=tmp_path / "missing" / "python")
    with pytest.raises(StartError, match="does not exist"):
        asyncio.run(_start(spec, tmp_path / "s.sock"))


def test_failed_boot_reports_not_ready(tmp_path: Path, image: tuple[Path, Path]) -> None:
    async def scenario() -> tuple[bool, int, bytes]:
        handle = await _start(_spec(tmp_path, image, "raise SystemExit('nope')\n"), tmp_path / "s.sock")
        ready = await handle.wait_ready()
        code = await handle.wait()
        stderr = await handle.stderr.read()
        return ready, await _drained(handle, code), stderr

    ready, exit_code, stderr = asyncio.run(scenario())
    assert not ready
    assert exit_code == 3
    assert b"SystemExit: nope" in stderr
