"""The crun engine (and runc with the same spec): serving, stopping, cleanup, limits, selection.

These run real containers and need root plus the engine's binary; without
them they are skipped with the reason. Escape and abuse tests live in
``test_isolation.py`` and reuse the helpers here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import cove
from cove.runtime import (
    CrunHandle,
    CrunRuntime,
    LaunchSpec,
    ProcessRuntime,
    cgroups,
    oci,
    open_unix_listener,
    select_runtime,
)

pytestmark = pytest.mark.timeout(120)

ENGINES = ["crun", "runc"]


def engine_missing(binary: str) -> str | None:
    if os.geteuid() != 0:
        return "isolated containers need root"
    if shutil.which(binary) is None:
        return f"{binary} is not installed (apt-get install {binary})"
    return None


def build_image(base: Path) -> tuple[Path, Path]:
    """A bare venv and a pylib folder, as the worker would hand them to an engine."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(base / "venv")], check=True)
    (base / "pylib").mkdir()
    (base / "pylib" / "cove").symlink_to(Path(cove.__file__).parent)
    return base / "venv", base / "pylib"


def make_runtime(binary: str, tmp_path: Path) -> CrunRuntime:
    reason = engine_missing(binary)
    if reason:
        pytest.skip(reason)
    return CrunRuntime(binary, root=tmp_path / "oci", tmp_mib=16)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_image(tmp_path_factory.mktemp("crun-image"))


@pytest.fixture(params=ENGINES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> CrunRuntime:
    return make_runtime(request.param, tmp_path)


# A handler that runs the code it is sent: each test says what to try from inside.
EXEC_APP = """
import os

def handler(code: str):
    scope = {}
    exec(code, scope)
    return scope.get("result")
"""


def make_spec(
    tmp_path: Path, image: tuple[Path, Path], code: str = EXEC_APP, name: str = "c1", **changes: Any
) -> LaunchSpec:
    code_dir = tmp_path / f"code-{name}"
    code_dir.mkdir()
    (code_dir / "app.py").write_text(textwrap.dedent(code))
    venv, pylib = image
    spec = LaunchSpec(
        container_id=f"test-{name}-{os.getpid()}",
        python=venv / "bin" / "python",
        venv=venv,
        code_dir=code_dir,
        work_dir=tmp_path / f"work-{name}",
        pylib_dir=pylib,
        module="app",
        function="handler",
        env={"GREETING": "hi"},
        memory_mib=256,
        pids_limit=64,
    )
    return dataclasses.replace(spec, **changes)


async def start(runtime: Any, spec: LaunchSpec, sock: Path) -> Any:
    listener = open_unix_listener(sock)
    try:
        return await runtime.start(spec, listener)
    finally:
        listener.close()


async def call(sock: Path, body: dict[str, Any]) -> tuple[int, Any]:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    data = json.dumps(body).encode()
    writer.write(b"POST /invoke HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    await writer.drain()
    reply = await reader.read()
    writer.close()
    head, _, payload = reply.partition(b"\r\n\r\n")
    if not head:
        return 0, None  # the connection died without an answer
    return int(head.split()[1]), json.loads(payload)


async def run_inside(runtime: Any, spec: LaunchSpec, sock: Path, code: str) -> Any:
    """Start a container, run ``code`` in it (its ``result`` comes back), stop it."""
    handle = await start(runtime, spec, sock)
    try:
        status, body = await call(sock, {"code": textwrap.dedent(code)})
        assert status == 200, (body, (await handle.stderr.read(4096)) if handle.returncode is not None else b"")
        return body
    finally:
        await handle.stop(5)


# --- spec generation (no engine needed) -----------------------------------------------------------


@pytest.mark.unit
def test_config_isolates_and_limits(tmp_path: Path) -> None:
    bundle = oci.Bundle(
        container_id="x",
        rootfs=tmp_path,
        args=["/cove/venv/bin/python", "-P", "-m", "cove.runner"],
        env={"A": "1"},
        mounts=[oci.Mount(tmp_path / "v", oci.VENV), oci.Mount(tmp_path / "w", oci.WORK, writable=True)],
        limits=oci.Limits(memory_mib=128, cpu_millis=500, pids=50, tmp_mib=8),
        host_id=165536,
        cgroups_path="/cove/x",
    )
    config = oci.build_config(bundle)
    linux = config["linux"]
    assert {ns["type"] for ns in linux["namespaces"]} >= {"pid", "ipc", "uts", "mount", "user", "network"}
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 165536, "size": 65536}]
    assert linux["cgroupsPath"] == "/cove/x"
    assert linux["resources"]["memory"]["limit"] == 128 * 1024 * 1024
    assert linux["resources"]["cpu"] == {"quota": 50_000, "period": 100_000}
    assert linux["resources"]["pids"] == {"limit": 50}
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert all(caps == [] for caps in config["process"]["capabilities"].values())
    assert config["process"]["noNewPrivileges"] is True
    assert config["root"] == {"path": str(tmp_path), "readonly": True}
    seccomp = linux["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {name for rule in seccomp["syscalls"] if "args" not in rule for name in rule["names"]}
    wanted = "mount umount2 ptrace kexec_load bpf keyctl add_key request_key unshare setns init_module"
    wanted += (
        " finit_module delete_module reboot swapon swapoff pivot_root open_by_handle_at perf_event_open userfaultfd"
    )
    assert set(wanted.split()) <= denied
    for limit in config["process"]["rlimits"]:
        kind = getattr(resource, limit["type"])
        hard = resource.getrlimit(kind)[1]
        assert hard == resource.RLIM_INFINITY or limit["hard"] <= hard, limit
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert "ro" in mounts[str(oci.VENV)]["options"] and "rw" in mounts[str(oci.WORK)]["options"]
    assert "size=8m" in mounts["/tmp"]["options"]
    assert config["process"]["args"][0] == "/cove/venv/bin/python"


@pytest.mark.unit
def test_select_runtime_names_and_fallbacks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="unknown runtime"):
        select_runtime("docker")
    assert isinstance(select_runtime("process"), ProcessRuntime)
    chosen = select_runtime("auto", root=tmp_path)
    expected = next((name for name in ENGINES if engine_missing(name) is None), "process")
    assert chosen.name == expected
    assert f"runtime: {expected}" in caplog.text


# --- real containers -------------------------------------------------------------------------------


def test_serves_requests_sent_before_ready(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    code = """
        import os
        def handler(name: str):
            fds = {}
            for fd in (3, 4):
                try:
                    fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    fds[fd] = None
            return {"hi": name, "uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(),
                    "env": dict(os.environ), "fds": fds}
    """
    sock = tmp_path / "s.sock"

    async def scenario() -> tuple[Any, dict[str, float], int]:
        handle = await start(runtime, make_spec(tmp_path, image, code), sock)
        status, body = await call(sock, {"name": "ada"})  # sent at once: waits in the backlog
        assert status == 200, body
        assert await handle.wait_ready()
        exit_code = await handle.stop(5)
        return body, dict(handle.timings), exit_code

    body, timings, exit_code = asyncio.run(scenario())
    assert exit_code == 0
    assert body["hi"] == "ada"
    assert body["uid"] == 0 and body["pid"] == 1  # root of its own user and pid namespaces
    assert body["cwd"] == "/cove/work"
    env = body["env"]
    assert env["VIRTUAL_ENV"] == "/cove/venv" and env["PATH"].startswith("/cove/venv/bin:")
    assert env["PYTHONPATH"] == "/cove/pylib" and env["COVE_CODE_DIR"] == "/cove/code"
    assert env["GREETING"] == "hi" and env["TMPDIR"] == "/tmp"
    assert str(tmp_path) not in json.dumps(env)  # nothing of the host's layout leaks in
    assert body["fds"]["3"].startswith("socket:")  # the listener the worker made, passed in
    for phase in ("mount_ms", "spec_ms", "spawn_ms", "ready_ms"):
        assert timings[phase] >= 0, phase


def test_limits_are_in_the_cgroup_and_stop_removes_everything(
    tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime
) -> None:
    code = """
        import subprocess
        child = subprocess.Popen(["sleep", "300"])
        def handler():
            return {"child": child.pid}
    """
    spec = make_spec(tmp_path, image, code, memory_mib=100, cpu_millis=250, pids_limit=40)
    sock = tmp_path / "s.sock"
    cgroup = f"/cove/{spec.container_id}"

    async def scenario() -> tuple[int, CrunHandle]:
        handle = await start(runtime, spec, sock)
        assert await handle.wait_ready()
        status, _ = await call(sock, {})
        assert status == 200
        limits = read_limits(runtime.layout, cgroup)
        assert limits["memory"] == 100 * 1024 * 1024
        assert limits["pids"] == 40
        assert limits["cpu"] == (25_000, 100_000)
        assert limits["procs"] >= 2  # the runner and its child
        assert handle.bundle_dir.is_dir()
        return await handle.stop(5), handle

    exit_code, handle = asyncio.run(scenario())
    assert exit_code in (0, -15)
    assert cgroups.cgroup_dirs(runtime.layout, cgroup) == []
    assert not handle.bundle_dir.exists()
    assert not (runtime.state_dir / spec.container_id).exists()


def read_limits(layout: cgroups.Layout, cgroup: str) -> dict[str, Any]:
    rel = cgroup.lstrip("/")
    root = cgroups.ROOT
    if layout is cgroups.Layout.V2:
        folder = root / rel
        quota, period = (folder / "cpu.max").read_text().split()
        return {
            "memory": int((folder / "memory.max").read_text()),
            "pids": int((folder / "pids.max").read_text()),
            "cpu": (int(quota), int(period)),
            "procs": len((folder / "cgroup.procs").read_text().split()),
        }
    return {
        "memory": int((root / "memory" / rel / "memory.limit_in_bytes").read_text()),
        "pids": int((root / "pids" / rel / "pids.max").read_text()),
        "cpu": (
            int((root / "cpu" / rel / "cpu.cfs_quota_us").read_text()),
            int((root / "cpu" / rel / "cpu.cfs_period_us").read_text()),
        ),
        "procs": len((root / "pids" / rel / "cgroup.procs").read_text().split()),
    }


def test_stuck_call_is_killed_after_grace(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    code = """
        import time
        def handler():
            time.sleep(60)
    """
    sock = tmp_path / "s.sock"

    async def scenario() -> tuple[int, str | None]:
        handle = await start(runtime, make_spec(tmp_path, image, code, env={"COVE_DRAIN_SECONDS": "30"}), sock)
        assert await handle.wait_ready()
        pending = asyncio.ensure_future(call(sock, {}))
        await asyncio.sleep(0.3)
        exit_code = await handle.stop(grace=0.3)
        pending.cancel()
        return exit_code, handle.exit_reason

    exit_code, reason = asyncio.run(scenario())
    assert exit_code == -9
    assert reason is None  # we killed it: not an OOM


def test_failed_boot_reports_not_ready(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    async def scenario() -> tuple[bool, int, bytes]:
        handle = await start(runtime, make_spec(tmp_path, image, "raise SystemExit('nope')\n"), tmp_path / "s.sock")
        ready = await handle.wait_ready()
        return ready, await handle.wait(), await handle.stderr.read()

    ready, exit_code, stderr = asyncio.run(scenario())
    assert not ready
    assert exit_code == 3
    assert b"SystemExit: nope" in stderr


def test_memory_limit_kills_and_reports_oom(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    sock = tmp_path / "s.sock"

    async def scenario() -> tuple[int, int, str | None]:
        handle = await start(runtime, make_spec(tmp_path, image, memory_mib=64), sock)
        assert await handle.wait_ready()
        status, _ = await call(sock, {"code": "blob = bytearray(256 << 20)\nresult = len(blob)"})
        return status, await handle.wait(), handle.exit_reason

    status, exit_code, reason = asyncio.run(scenario())
    assert status == 0  # no answer: the container died mid-call
    assert exit_code == -9
    assert reason and reason.startswith("OOMKilled")


class _Shipper:
    """Stands in for the log shipper: the worker's container driver only adds lines to it."""

    def add(self, container_id: str, stream: str, text: str) -> None:
        pass


def test_worker_reports_oomkilled(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    from cove._wire.worker import ContainerEvent, ContainerSpec
    from cove.worker._containers import Container
    from cove.worker._paths import WorkerDirs

    code = "blob = bytearray(256 << 20)\ndef handler():\n    return {}\n"  # dies while loading
    spec = make_spec(tmp_path, image, code, memory_mib=64)
    dirs = WorkerDirs(tmp_path / "worker")
    dirs.create()
    events: list[ContainerEvent] = []

    async def emit(event: ContainerEvent) -> None:
        events.append(event)

    async def prepare(_: ContainerSpec) -> tuple[Path, Path, Path, dict[str, float]]:
        assert spec.venv is not None
        return spec.venv, spec.python, spec.code_dir, {}

    order = ContainerSpec(
        container_id="oom1",
        workspace_id="w",
        deployment_id="d",
        deployment_name="d",
        version=1,
        kind="endpoint",
        module="app",
        function="handler",
        code_hash="0" * 64,
        image_id="i",
        cpu_millis=1000,
        memory_mib=64,
        concurrent_requests=1,
    )
    container = Container(
        order,
        runtime=runtime,
        dirs=dirs,
        shipper=_Shipper(),  # type: ignore[arg-type]
        emit=emit,
        prepare=prepare,
        grace=2,
    )
    asyncio.run(container.run())
    exited = events[-1]
    assert exited.event == "exited"
    assert exited.exit_code == -9
    assert exited.reason and exited.reason.startswith("OOMKilled"), exited.reason


def test_debootstrap_base(tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime) -> None:
    """Needs a Debian mirror and a minute the first time: runs only when COVE_TEST_DEBOOTSTRAP names a cache folder."""
    from cove.runtime._rootfs import build_debootstrap_base

    cache = os.environ.get("COVE_TEST_DEBOOTSTRAP")
    if not cache:
        pytest.skip("set COVE_TEST_DEBOOTSTRAP=/a/cache/folder to build (once) and test the debootstrap base")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    base = build_debootstrap_base(Path(cache))
    spec = make_spec(tmp_path, image, rootfs=base)
    code = """
        import os, subprocess
        own = subprocess.run(["/usr/bin/python3", "-c", "print(1)"], capture_output=True)
        result = {"debian": open("/etc/debian_version").read().strip(),
                  "apt": os.path.exists("/usr/bin/apt-get"),
                  "python3": own.stdout.decode()}
    """
    result = asyncio.run(run_inside(runtime, spec, tmp_path / "s.sock", code))
    assert result["debian"].startswith("12")
    assert result["apt"] and result["python3"] == "1\n"
