"""GPUs with a fake inventory: no test here touches a GPU, NVML or a real MPS daemon.

What they check is everything around the hardware: the inventory format, the
exact MPS commands and OCI spec a real GPU would get, the daemon's life cycle
(against a stand-in control program), refusing to run a fraction unlimited,
and, through a real server with fake GPUs, placement, packing, the backlog
reason in ``cove ps``, ``cove gpu list`` and the metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, start_server

from cove.exceptions import ConfigError
from cove.gpu import (
    DriverFiles,
    FakeInventory,
    GpuDevice,
    GpuError,
    GpuManager,
    MpsDaemon,
    MpsPlan,
    NoGpus,
    detect_inventory,
    device_nodes,
    fraction_grant,
    parse_ldconfig,
    whole_gpu_grant,
)
from cove.runtime import oci

GPU_APP = APPS / "gpu" / "app.py"
H100 = GpuDevice(0, "GPU-11111111-aaaa", "NVIDIA H100 80GB HBM3", 81559, minor=0)
H100_B = GpuDevice(1, "GPU-22222222-bbbb", "NVIDIA H100 80GB HBM3", 81559, minor=1)
NODES = {"/dev/nvidia0": (195, 0), "/dev/nvidia1": (195, 1), "/dev/nvidiactl": (195, 255), "/dev/nvidia-uvm": (510, 0)}


def fake_stat(path: str) -> Any:
    """Device numbers of a typical host, without the host having them (only ``st_rdev`` is read)."""
    if path not in NODES:
        raise FileNotFoundError(path)
    return SimpleNamespace(st_rdev=os.makedev(*NODES[path]))


# -- inventory ------------------------------------------------------------------------


def test_fake_gpu_inventory_from_json_text_and_file(tmp_path: Path) -> None:
    inventory = FakeInventory.parse('[{"name": "H100", "memory": "80Gi"}, {"name": "A10G", "memory": 24576}]', "w1")
    assert [d.to_dict() for d in inventory.devices()] == [
        {"index": 0, "uuid": "GPU-fake-w1-0", "name": "H100", "memory_mib": 81920},
        {"index": 1, "uuid": "GPU-fake-w1-1", "name": "A10G", "memory_mib": 24576},
    ]
    assert [u.to_dict() for u in inventory.usage()] == [
        {"uuid": "GPU-fake-w1-0", "utilization": None, "memory_used_mib": None},
        {"uuid": "GPU-fake-w1-1", "utilization": None, "memory_used_mib": None},
    ]
    spec = tmp_path / "gpus.json"
    spec.write_text('[{"name": "T4", "memory": "16Gi", "uuid": "GPU-mine"}]')
    assert detect_inventory({"COVE_FAKE_GPUS": str(spec)}).devices()[0].uuid == "GPU-mine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"name": "H100"}', "must be a JSON list"),
        ('[{"name": "H100"}]', r"\[0\] must have a name and a memory size"),
        ('[{"name": "H100", "memory": "lots"}]', r"\[0\]: memory 'lots' is not a size"),
        ("/nonexistent/gpus.json", "cannot read"),
        ('[{"name": "H100", "memory": "80Gi", "utilization": 140}]', r"\[0\]: utilization must be a percentage"),
        ('[{"name": "H100", "memory": "80Gi", "utilization": true}]', r"\[0\]: utilization must be a percentage"),
        ('[{"name": "H100", "memory": "80Gi", "memory_used": "some"}]', r"\[0\]: memory_used: "),
    ],
)
def test_fake_gpu_inventory_rejects_bad_descriptions(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FakeInventory.parse(text)


def test_fake_gpu_inventory_reports_the_figures_it_states_and_none_otherwise() -> None:
    inventory = FakeInventory.parse(
        '[{"name": "H100", "memory": "80Gi", "utilization": 37, "memory_used": "20Gi"},'
        ' {"name": "A10G", "memory": "24Gi"}]'
    )
    stated, silent = inventory.usage()
    assert (stated.utilization, stated.memory_used_mib) == (37.0, 20480)
    assert (silent.utilization, silent.memory_used_mib) == (None, None)


def test_fake_gpu_detect_without_driver_reports_none() -> None:
    """This machine has no NVIDIA driver: the real detection must answer "no GPUs", not fail."""
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA driver")
    inventory = detect_inventory({})
    assert isinstance(inventory, NoGpus) and inventory.devices() == ()


# -- the container spec a real GPU would get -----------------------------------------------


def test_fake_gpu_whole_gpu_oci_spec_has_exactly_its_devices() -> None:
    driver = DriverFiles(
        libraries=(Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), Path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")),
        binaries=(Path("/usr/bin/nvidia-smi"),),
    )
    grant = whole_gpu_grant([H100_B], device_nodes([H100_B], fake_stat), driver)
    assert grant.env == {
        "NVIDIA_VISIBLE_DEVICES": "GPU-22222222-bbbb",
        "CUDA_VISIBLE_DEVICES": "GPU-22222222-bbbb",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
    }
    assert grant.mounts == (
        (Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), False),
        (
            Path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
            Path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
            False,
        ),
        (Path("/usr/bin/nvidia-smi"), Path("/usr/bin/nvidia-smi"), False),
    )
    bundle = oci.Bundle(
        container_id="ctr-gpu",
        rootfs=Path("/rootfs"),
        args=["python"],
        env=dict(grant.env),
        mounts=[oci.Mount(h, t, w) for h, t, w in grant.mounts],
        limits=oci.Limits(memory_mib=512, cpu_millis=1000, pids=64, tmp_mib=64),
        host_id=100000,
        cgroups_path="/cove/ctr-gpu",
        devices=grant.devices,
    )
    config = oci.build_config(bundle)
    # GPU 1 only (not /dev/nvidia0), the control nodes; no uvm-tools on this host, so none.
    assert config["linux"]["devices"] == [
        {"path": "/dev/nvidia1", "type": "c", "major": 195, "minor": 1, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/nvidia-uvm", "type": "c", "major": 510, "minor": 0, "fileMode": 0o666, "uid": 0, "gid": 0},
    ]
    assert config["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 195, "minor": 1, "access": "rw"},
        {"allow": True, "type": "c", "major": 195, "minor": 255, "access": "rw"},
        {"allow": True, "type": "c", "major": 510, "minor": 0, "access": "rw"},
    ]
    libcuda = next(m for m in config["mounts"] if m["destination"].endswith("libcuda.so.1"))
    assert "ro" in libcuda["options"] and libcuda["type"] == "bind"
    # And a container without GPUs gets no device at all.
    plain = oci.build_config(dataclasses.replace(bundle, devices=()))
    assert "devices" not in plain["linux"] and plain["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"}
    ]


def test_fake_gpu_missing_device_node_is_an_error_not_a_silent_cpu_run() -> None:
    lost = GpuDevice(3, "GPU-x", "H100", 80000, minor=3)
    with pytest.raises(GpuError, match="/dev/nvidia3 is missing"):
        device_nodes([lost], fake_stat)
    with pytest.raises(GpuError, match="fake GPU"):
        device_nodes([GpuDevice(0, "GPU-fake", "H100", 80000)], fake_stat)


def test_fake_gpu_fraction_spec_mounts_its_own_mps_folder(tmp_path: Path) -> None:
    grant = fraction_grant(H100, device_nodes([H100], fake_stat), DriverFiles(), tmp_path / "ctr-1", 10240, 12)
    assert grant.mounts == ((tmp_path / "ctr-1", Path("/cove/mps"), True),)
    assert grant.env == {
        "NVIDIA_VISIBLE_DEVICES": "GPU-11111111-aaaa",
        "CUDA_VISIBLE_DEVICES": "GPU-11111111-aaaa",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "COVE_GPU_MEMORY_MIB": "10240",
        "COVE_GPU_COMPUTE": "12",
        "CUDA_MPS_PIPE_DIRECTORY": "/cove/mps/pipe",
        "CUDA_MPS_LOG_DIRECTORY": "/cove/mps/log",
    }
    assert [d.path for d in grant.devices] == [Path("/dev/nvidia0"), Path("/dev/nvidiactl"), Path("/dev/nvidia-uvm")]


def test_fake_gpu_mps_plan_exact_commands(tmp_path: Path) -> None:
    plan = MpsPlan(tmp_path / "ctr-1", "GPU-11111111-aaaa", 10240, 12)
    assert plan.start_argv() == ["nvidia-cuda-mps-control", "-d"]
    assert plan.limit_commands() == [
        "set_default_device_pinned_mem_limit 0 10240M",
        "set_default_active_thread_percentage 12",
    ]
    assert plan.quit_command() == "quit"
    env = plan.env()
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == str(tmp_path / "ctr-1" / "pipe")
    assert env["CUDA_MPS_LOG_DIRECTORY"] == str(tmp_path / "ctr-1" / "log")
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-11111111-aaaa"  # so the GPU is the daemon's device 0


def test_fake_gpu_driver_libraries_from_ldconfig_output() -> None:
    listing = textwrap.dedent(
        """\
        1234 libs found in cache `/etc/ld.so.cache'
        \tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
        \tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1
        \tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
        \tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
        """
    )
    assert parse_ldconfig(listing) == (
        Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        Path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
    )


# -- the MPS daemon's life, against a stand-in control program ---------------------------------

STAND_IN = """#!/bin/sh
# Stands in for nvidia-cuda-mps-control: records what it is asked, keeps a "daemon" alive until quit.
log="$CUDA_MPS_PIPE_DIRECTORY/../calls.log"
if [ "$1" = "-d" ]; then
    echo "start $CUDA_VISIBLE_DEVICES $CUDA_MPS_LOG_DIRECTORY" >> "$log"
    sleep 300 &
    echo $! > "$CUDA_MPS_PIPE_DIRECTORY/nvidia-cuda-mps-control.pid"
    exit 0
fi
read -r command
echo "$command" >> "$log"
case "$command" in
    quit) kill "$(cat "$CUDA_MPS_PIPE_DIRECTORY/nvidia-cuda-mps-control.pid")" ;;
    *percentage*) [ -n "$REFUSE" ] && { echo "Error: invalid value"; exit 1; } ;;
esac
exit 0
"""


def _stand_in(tmp_path: Path, refuse: bool = False) -> str:
    script = tmp_path / "mps-control"
    script.write_text(STAND_IN.replace('[ -n "$REFUSE" ]', "true" if refuse else "false"))
    script.chmod(0o755)
    return str(script)


def test_fake_gpu_mps_daemon_starts_with_limits_and_quits(tmp_path: Path) -> None:
    binary = _stand_in(tmp_path)
    plan = MpsPlan(tmp_path / "mps" / "ctr-1", "GPU-11111111-aaaa", 10240, 12, binary)

    async def scenario() -> list[str]:
        daemon = MpsDaemon(plan, timeout=5)
        await daemon.start()
        assert daemon.pid is not None and Path(f"/proc/{daemon.pid}").exists()
        assert (plan.pipe_dir.stat().st_mode & 0o777) == 0o777  # the container's uid must reach it
        calls = (plan.root / "calls.log").read_text().splitlines()
        await daemon.stop()
        assert not Path(f"/proc/{daemon.pid}/status").exists() or "Z" in Path(f"/proc/{daemon.pid}/stat").read_text()
        assert not plan.root.exists()
        return calls

    calls = asyncio.run(scenario())
    assert calls == [
        f"start GPU-11111111-aaaa {plan.log_dir}",
        "set_default_device_pinned_mem_limit 0 10240M",
        "set_default_active_thread_percentage 12",
    ]


def test_fake_gpu_mps_limit_refused_fails_and_cleans_up(tmp_path: Path) -> None:
    plan = MpsPlan(tmp_path / "mps" / "ctr-2", "GPU-x", 1024, 5, _stand_in(tmp_path, refuse=True))

    async def scenario() -> None:
        daemon = MpsDaemon(plan, timeout=5)
        with pytest.raises(GpuError, match="refused 'set_default_active_thread_percentage 5'"):
            await daemon.start()

    asyncio.run(scenario())
    assert not plan.root.exists()  # the daemon was told to quit and its folder removed


class _TestInventory:
    """Looks like real hardware to the manager (device minors set), without any."""

    kind = "test"

    def devices(self) -> tuple[GpuDevice, ...]:
        return (H100,)

    def usage(self) -> tuple[Any, ...]:
        return ()

    def processes(self) -> tuple[Any, ...]:
        return ()


def test_fake_gpu_fraction_without_mps_never_runs_unlimited(tmp_path: Path) -> None:
    manager = GpuManager(
        _TestInventory(), tmp_path / "mps", driver=DriverFiles(), mps_binary="/nonexistent/mps-control", stat=fake_stat
    )
    share = {"index": 0, "uuid": H100.uuid, "name": H100.name, "memory_mib": 10240, "compute": 12, "whole": False}
    with pytest.raises(
        GpuError, match="cannot start the MPS control daemon: /nonexistent/mps-control is not installed"
    ):
        asyncio.run(manager.acquire("ctr-x", [share]))
    with pytest.raises(GpuError, match="is not on this worker"):
        asyncio.run(manager.acquire("ctr-y", [{**share, "uuid": "GPU-elsewhere"}]))


def test_fake_gpu_manager_runs_the_plan_and_releases(tmp_path: Path) -> None:
    manager = GpuManager(
        _TestInventory(), tmp_path / "mps", driver=DriverFiles(), mps_binary=_stand_in(tmp_path), stat=fake_stat
    )
    share = {"index": 0, "uuid": H100.uuid, "name": H100.name, "memory_mib": 20480, "compute": 25, "whole": False}

    async def scenario() -> None:
        grant = await manager.acquire("ctr-z", [share])
        assert grant.env["COVE_GPU_MEMORY_MIB"] == "20480"
        assert grant.mounts[-1] == (tmp_path / "mps" / "ctr-z", Path("/cove/mps"), True)
        assert "ctr-z" in manager.daemons
        await manager.release("ctr-z")
        await manager.release("ctr-z")  # twice is harmless
        assert manager.daemons == {} and not (tmp_path / "mps" / "ctr-z").exists()

    asyncio.run(scenario())


# -- through a real server with fake GPUs ---------------------------------------------------------

FAKE_GPUS = json.dumps([{"name": "NVIDIA H100 80GB HBM3", "memory": "80Gi"}, {"name": "NVIDIA A10G", "memory": "24Gi"}])


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = start_server(tmp_path_factory.mktemp("gpu") / "cove", extra_env={"COVE_FAKE_GPUS": FAKE_GPUS})
    yield srv
    srv.stop()


def _wide(srv: Server, *args: str) -> str:
    """A command's table as a person with a wide terminal sees it."""
    env = {**srv.env, "COVE_TOKEN": srv.token, "COLUMNS": "400"}
    done = subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def _gpus(srv: Server) -> dict[str, Any]:
    (worker,) = srv.cli_json("gpu", "list")
    return {g["name"]: g for g in worker["gpus"]}


@pytest.mark.e2e
def test_fake_gpu_end_to_end_placement_packing_backlog(gpu_server: Server) -> None:
    srv = gpu_server
    for name in ("half", "other_half", "whole"):
        srv.deploy(f"{GPU_APP}:{name}")
    gpus = _gpus(srv)
    h100, a10g = gpus["NVIDIA H100 80GB HBM3"], gpus["NVIDIA A10G"]
    assert (h100["memory_mib"], a10g["memory_mib"]) == (81920, 24576)
    assert h100["uuid"].startswith("GPU-fake-") and h100["utilization"] is None  # fake: no live figures

    with srv.http() as http:
        half = http.post("/endpoint/half", json={}).json()
        other = http.post("/endpoint/other-half", json={}).json()
        whole = http.post("/endpoint/whole", json={}).json()
    # Each container sees exactly its GPU, by UUID, and its share.
    assert half["CUDA_VISIBLE_DEVICES"] == half["NVIDIA_VISIBLE_DEVICES"] == h100["uuid"]
    assert (half["COVE_GPU_MEMORY_MIB"], half["COVE_GPU_COMPUTE"]) == ("30720", "37")  # 30/80 of the SMs
    assert half["CUDA_MPS_PIPE_DIRECTORY"].endswith("/pipe")
    # A100 was preferred but there is none: the H100 was taken, with the compute asked for.
    assert other["CUDA_VISIBLE_DEVICES"] == h100["uuid"] and other["COVE_GPU_COMPUTE"] == "40"
    assert whole["CUDA_VISIBLE_DEVICES"] == a10g["uuid"] and "COVE_GPU_MEMORY_MIB" not in whole

    # A third 30 GiB share does not fit (20 GiB left): its floor (min_containers=1) and its request wait,
    # and ps says why. No worker has an A100 at all: that deploy needs --force, and its calls fail at once.
    srv.deploy(f"{GPU_APP}:third")
    srv.deploy(f"{GPU_APP}:needs_a100", "--force")
    with srv.http() as http:
        with pytest.raises(httpx.TimeoutException):
            http.post("/endpoint/third", json={}, timeout=1)
        refused = http.post("/endpoint/needs-a100", json={}, timeout=10)
        assert refused.status_code == 503 and "none of type A100" in refused.json()["error"]["message"]

    def waiting() -> dict[str, str]:
        rows = srv.containers()
        return {r["deployment"]: r["reason"] for r in rows if r["state"] == "waiting"}

    reasons = srv.wait_for(lambda: (r := waiting()) and len(r) == 2 and r, timeout=20)
    assert reasons == {
        "third": "no GPU with 30 GiB free of type H100",
        "needs-a100": "no worker has a GPU of type A100",
    }
    ps = _wide(srv, "ps")
    assert "(backlog)" in ps and "no GPU with 30 GiB free of type H100" in ps

    gpus = _gpus(srv)
    h100 = gpus["NVIDIA H100 80GB HBM3"]
    assert (h100["allocated_memory_mib"], h100["allocated_compute"], h100["held_whole"]) == (61440, 77, False)
    holders = sorted((h["deployment"], h["memory_mib"], h["compute"]) for h in h100["holders"])
    assert holders == [("half", 30720, 37), ("other-half", 30720, 40)]
    assert gpus["NVIDIA A10G"]["held_whole"] is True
    listing = _wide(srv, "gpu", "list")
    assert "NVIDIA A10G" in listing and "whole" in listing

    with srv.http() as http:
        metrics = http.get("/metrics").text
    assert 'cove_gpu_allocated_memory_bytes{gpu="0"' in metrics
    assert "cove_container_gpu_memory_limit_bytes{" in metrics and 'deployment="half"' in metrics

    # The half's deployment stops (its floor with it): its room goes to the waiting third at once.
    srv.cli("deployment", "stop", "half")
    placed = srv.wait_for(
        lambda: [r for r in srv.containers("third") if r["id"] and r["state"] in ("listening", "ready")], timeout=30
    )
    assert placed
    assert all(r["deployment"] != "third" for r in srv.containers() if r["state"] == "waiting")


@pytest.mark.e2e
def test_fake_gpu_bad_registration_is_refused(gpu_server: Server) -> None:
    srv = gpu_server
    body = {
        "name": "bogus",
        "cpu_millis": 1000,
        "memory_mib": 1024,
        "gpus": [
            {"index": 0, "uuid": "GPU-a", "name": "H100", "memory_mib": 80000},
            {"index": 0, "uuid": "GPU-b", "name": "H100", "memory_mib": 80000},
        ],
    }
    with srv.http() as http:
        reply = http.post("/api/v1/workers/register", json=body)
        assert reply.status_code == 422 and "own index and uuid" in reply.text
        reply = http.post(
            "/api/v1/workers/register", json={**body, "gpus": [{"index": 0, "uuid": "", "name": "x", "memory_mib": 0}]}
        )
        assert reply.status_code == 422
