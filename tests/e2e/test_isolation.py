"""Escape and abuse attempts from inside a crun (and runc) container; each must fail.

Network checks talk only to a server this test runs on the host's loopback:
"no network" is shown by the container's interfaces and by that server
never seeing a connection, never by touching any other address.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from cove.runtime import CrunRuntime

from .test_crun import ENGINES, build_image, call, make_runtime, make_spec, run_inside, start

pytestmark = pytest.mark.timeout(120)


def inside(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime, code: str, **changes: Any) -> Any:
    spec = make_spec(tmp_path, image, **changes)
    return asyncio.run(run_inside(runtime, spec, tmp_path / "s.sock", code))


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_image(tmp_path_factory.mktemp("isolation-image"))


@pytest.fixture(params=ENGINES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> CrunRuntime:
    return make_runtime(request.param, tmp_path)


def test_host_secrets_are_absent(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        import os
        def attempt(path):
            try:
                with open(path, "rb") as f:
                    return "read %d bytes" % len(f.read())
            except OSError as exc:
                return type(exc).__name__
        paths = ("/etc/shadow", "/etc/gshadow", "/root/.bash_history", "/etc/ssh/ssh_host_rsa_key")
        result = {p: attempt(p) for p in paths}
        result["root_entries"] = sorted(os.listdir("/"))
        result["passwd"] = open("/etc/passwd").read()
        """,
    )
    for path in ("/etc/shadow", "/etc/gshadow", "/root/.bash_history", "/etc/ssh/ssh_host_rsa_key"):
        assert result[path] in ("FileNotFoundError", "PermissionError"), (path, result[path])
    assert "home" not in result["root_entries"] and "var" not in result["root_entries"]
    assert result["passwd"].count("\n") == 2  # Cove's own two lines, not the host's users


def test_only_its_own_processes_are_visible(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        import os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        cmds = [open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace") for p in pids]
        result = {"pids": pids, "cmds": cmds}
        """,
    )
    assert result["pids"] == [1], result  # the runner alone, as pid 1
    assert "cove.runner" in result["cmds"][0]


def test_another_containers_files_are_out_of_reach(
    tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime
) -> None:
    async def scenario() -> Any:
        first = make_spec(tmp_path, image, name="a")
        second = make_spec(tmp_path, image, name="b")
        handle = await start(runtime, first, tmp_path / "a.sock")
        try:
            status, _ = await call(tmp_path / "a.sock", {"code": "open('/cove/work/secret', 'w').write('A only')"})
            assert status == 200
            assert (first.work_dir / "secret").read_text() == "A only"
            return await run_inside(
                runtime,
                second,
                tmp_path / "b.sock",
                f"""
                import os
                result = {{
                    "own_work": os.listdir("/cove/work"),
                    "host_path_of_a": os.path.exists({str(first.work_dir)!r}),
                    "tmp_root": os.path.exists({str(tmp_path)!r}),
                }}
                """,
            )
        finally:
            await handle.stop(5)

    result = asyncio.run(scenario())
    assert result == {"own_work": [], "host_path_of_a": False, "tmp_root": False}


def test_no_network_by_default(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[Any] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the timeout: nobody came, as it should be
            accepted.append(server.accept())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = inside(
            tmp_path,
            image,
            runtime,
            f"""
            import socket
            names = [name for _, name in socket.if_nameindex()]
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", {port}))
                outcome = "connected"
            except OSError as exc:
                outcome = type(exc).__name__
            result = {{"interfaces": names, "connect": outcome}}
            """,
        )
    finally:
        thread.join()
        server.close()
    assert result["interfaces"] == ["lo"]
    assert result["connect"] != "connected"
    assert accepted == []  # the host's server never saw it


def test_fork_bomb_is_stopped_by_the_pids_limit(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        import os, time
        children, error = [], None
        for _ in range(500):
            try:
                pid = os.fork()
            except OSError as exc:
                error = exc.errno
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        result = {"forked": len(children), "errno": error}
        """,
        pids_limit=32,
    )
    assert result["errno"] == 11  # EAGAIN
    assert result["forked"] < 32


def test_tmp_is_size_limited(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        written, error = 0, None
        chunk = b"x" * (1 << 20)
        with open("/tmp/fill", "wb", buffering=0) as f:
            try:
                for _ in range(1024):
                    written += f.write(chunk)
            except OSError as exc:
                error = exc.errno
        result = {"written_mib": written >> 20, "errno": error}
        """,
    )
    assert result["errno"] == 28  # ENOSPC
    assert result["written_mib"] <= 16


def test_root_and_system_folders_are_read_only(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        def attempt(path):
            try:
                open(path, "w").write("x")
                return "written"
            except OSError as exc:
                return exc.errno
        result = {p: attempt(p) for p in ("/evil", "/etc/passwd", "/usr/evil", "/cove/venv/evil", "/cove/code/evil",
                                          "/cove/pylib/cove/evil", "/cove/work/fine", "/tmp/fine")}
        """,
    )
    for path in ("/evil", "/etc/passwd", "/usr/evil", "/cove/venv/evil", "/cove/code/evil", "/cove/pylib/cove/evil"):
        assert result[path] == 30, (path, result[path])  # EROFS
    assert result["/cove/work/fine"] == "written" and result["/tmp/fine"] == "written"


def test_no_capabilities_no_new_privileges(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        result = {key: fields[key].strip() for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                                        "NoNewPrivs", "Seccomp")}
        """,
    )
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(result[key], 16) == 0, (key, result[key])
    assert result["NoNewPrivs"] == "1"
    assert result["Seccomp"] == "2"  # a filter is installed


def test_seccomp_denies_dangerous_calls(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    # unshare(CLONE_NEWUSER) and ptrace(PTRACE_TRACEME) need no privilege at all: only the
    # filter stops them, so their EPERM proves it is in force (x86_64 syscall numbers).
    result = inside(
        tmp_path,
        image,
        runtime,
        """
        import ctypes, os, platform
        libc = ctypes.CDLL(None, use_errno=True)
        def attempt(*args):
            ctypes.set_errno(0)
            rc = libc.syscall(*args)
            return rc, ctypes.get_errno()
        result = {"arch": platform.machine(),
                  "unshare_user": attempt(272, 0x10000000),
                  "unshare_ns": attempt(272, 0x00020000),
                  "ptrace_traceme": attempt(101, 0, 0, 0, 0),
                  "mount": attempt(165, b"none", b"/tmp", b"tmpfs", 0, None),
                  "keyctl": attempt(250, 0, 0, 0, 0, 0),
                  "bpf": attempt(321, 0, 0, 0),
                  "userfaultfd": attempt(323, 0)}
        """,
    )
    if result.pop("arch") != "x86_64":
        pytest.skip("syscall numbers here are x86_64's")
    for name, (rc, errno) in result.items():
        assert (rc, errno) == (-1, 1), (name, rc, errno)  # EPERM
