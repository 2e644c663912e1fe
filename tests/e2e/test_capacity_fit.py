"""Work no worker can hold: refused at deploy with the unmet need, or (forced) failing fast at call time.

The verdict is placement's own (``never_fits`` asks ``choose`` of empty workers); the end-to-end
tests run a real server whose local worker has two fake H100s and a second worker in pool ``big``
with one core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, start_server

from cove._wire.config import DeploymentConfig
from cove.scheduler import Fit, GpuRoom, Scheduler, WorkerHandle
from cove.scheduler._placement import NoRoom, Placement, Request, WorkerRoom, choose, memory_text, never_fits
from cove.scheduler._scheduler import request_for
from cove.store import Store

H100 = "NVIDIA H100 80GB HBM3"
GiB = 1024


def _gpus(count: int, name: str = H100, memory: int = 80 * GiB) -> tuple[GpuRoom, ...]:
    return tuple(GpuRoom(i, f"GPU-{i}", name, memory) for i in range(count))


WORKERS = [
    WorkerRoom("gpu-host", 8000, 15872, None, _gpus(2)),
    WorkerRoom("batch-host", 2000, 64 * GiB, "batch"),
]


def _req(**kw: Any) -> Request:
    return request_for(DeploymentConfig.build("endpoint", **{"cpu": 1, "memory": 512, **kw}))


# -- the fit predicate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("needs", "reason"),
    [
        (
            {"memory": "128Gi"},
            "memory 128 GiB (memory_mib 131072) is more than any worker has: the largest worker has 64 GiB (65536 MiB)",
        ),
        (
            {"cpu": 200},
            "cpu 200 cores (cpu_millis 200000) is more than any worker has: the largest worker has 8 cores",
        ),
        ({"gpu": "A10G"}, f"gpu A10G: the workers have 2×{H100}, none of type A10G"),
        ({"gpu": "H100", "gpu_count": 3}, f"gpu 3×H100: at most 2 on one worker (the workers have 2×{H100})"),
        (
            {"gpu": "H100", "gpu_memory": "100Gi"},
            "gpu H100 with gpu_memory 100 GiB: the largest such GPU has 80 GiB (81920 MiB)",
        ),
        ({"pool": "gpu"}, "pool 'gpu': no worker is in that pool (the workers' pools: (none), 'batch')"),
        ({"pool": "batch", "gpu": "any"}, "gpu any: no worker in pool 'batch' has a GPU"),
        (
            {"cpu": 4, "memory": "30Gi"},
            "no worker has 4 cores and 30 GiB memory together"
            f" (workers offer: 2 cores, 64 GiB; 8 cores, 15.5 GiB, 2×{H100})",
        ),
    ],
)
def test_never_fits_names_the_unmet_need_and_what_workers_offer(needs: dict[str, Any], reason: str) -> None:
    request = _req(**needs)
    assert never_fits(WORKERS, request) == reason
    # The same verdict as placement itself on the empty workers.
    assert not isinstance(choose(WORKERS, request), Placement)


@pytest.mark.parametrize(
    "needs",
    [
        {"memory": "64Gi"},  # only the batch host, and no pool asked: fine
        {"cpu": 8, "memory": "15Gi", "gpu": "H100", "gpu_count": 2},
        {"gpu": ["A10G", "H100"]},  # a later preference that exists
        {"gpu": "any", "gpu_memory": "80Gi", "gpu_compute": 100},
        {"pool": "batch", "cpu": 2},
    ],
)
def test_what_an_empty_worker_can_hold_fits(needs: dict[str, Any]) -> None:
    assert never_fits(WORKERS, _req(**needs)) is None


def test_capacity_is_judged_on_empty_workers_not_on_free_room() -> None:
    """A worker that is full now still counts: its work may stop. Only what it offers decides."""
    full = [WorkerRoom("busy", 0, 0, None, (GpuRoom(0, "GPU-0", H100, 80 * GiB, held_whole=True),))]
    assert isinstance(choose(full, _req(gpu="H100")), NoRoom)  # no room now...
    empty = [WorkerRoom("busy", 8000, 32 * GiB, None, _gpus(1))]
    assert never_fits(empty, _req(gpu="H100")) is None  # ...but room one day


def test_memory_text() -> None:
    assert [memory_text(m) for m in (512, 1024, 15872, 65535, 4 * 1024 * 1024)] == [
        "512 MiB",
        "1 GiB",
        "15.5 GiB",
        "64 GiB",
        "4 TiB",
    ]


def test_scheduler_fit_refuses_warns_or_accepts() -> None:
    """No worker yet: a warning. A misfit on the live workers: refused. Only cordoned ones fit: a warning."""
    with tempfile.TemporaryDirectory() as folder:
        scheduler = Scheduler(Store(f"sqlite+aiosqlite:///{folder}/cove.db"), None)  # type: ignore[arg-type]
        small = DeploymentConfig.build("endpoint", memory="1Gi")
        huge = DeploymentConfig.build("endpoint", memory="4Ti")
        warning = scheduler.fit(small).warning
        assert warning is not None and "no live worker is registered yet" in warning
        scheduler.workers["w1"] = WorkerHandle("w1", "node-1", 2000, 4096, "process")
        assert scheduler.fit(small) == Fit()
        assert scheduler.fit(huge) == Fit(
            misfit="memory 4 TiB (memory_mib 4194304) is more than any worker has: "
            "the largest worker has 4 GiB (4096 MiB)"
        )
        scheduler.workers["w1"].admin_state = "cordoned"
        fit = scheduler.fit(small)
        assert fit.misfit is None and fit.warning is not None and "cordoned or draining workers" in fit.warning
        assert "(node-1)" in fit.warning
        scheduler.workers["w1"].state = "lost"
        assert "no live worker is registered yet" in (scheduler.fit(huge).warning or "")


# -- through a real server --------------------------------------------------------------------

APP = """
from cove import QueueDepthAutoscaler, endpoint, function, task_queue

SMALL = {"cpu": 0.25, "memory": 256}
ONE = QueueDepthAutoscaler(min_containers=1, max_containers=1)


@endpoint(**SMALL)
def fits() -> dict:
    return {"ok": True}


@endpoint(cpu=0.25, memory="4Ti")
def huge() -> dict:
    return {"ok": True}


@endpoint(gpu="A10G", **SMALL)
def a10g() -> dict:
    return {"ok": True}


@endpoint(pool="nowhere", **SMALL)
def elsewhere() -> dict:
    return {"ok": True}


@function(gpu="A10G", **SMALL)
def a10g_fn(x: int) -> int:
    return x


@task_queue(cpu=0.25, memory="4Ti")
def huge_queue(x: int) -> int:
    return x


@endpoint(pool="big", cpu=1, memory=256, autoscaler=ONE)
def holder() -> dict:
    return {"ok": True}


@endpoint(pool="big", cpu=1, memory=256)
def waiter() -> dict:
    return {"ok": True}
"""

FAKE_GPUS = json.dumps([{"name": H100, "memory": "80Gi"}, {"name": H100, "memory": "80Gi"}])
FAST = 15.0  # seconds: a refused call answers well within this (the old wait was the 180 s timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server whose local worker has two fake H100s, plus worker ``big`` (pool=big, one core, no GPU)."""
    base = tmp_path_factory.mktemp("capacity")
    srv = start_server(base / "cove", None, {"COVE_FAKE_GPUS": FAKE_GPUS}, "--worker-cpu", "4")
    with srv.http() as http:
        reply = http.post("/api/v1/tokens", json={"name": "big-worker", "role": "worker"})
        assert reply.status_code == 201, reply.text
        token = reply.json()["token"]
    env = {k: v for k, v in srv.env.items() if k not in ("COVE_FAKE_GPUS", "COVE_TOKEN")}
    log = (srv.home / "worker-big.log").open("ab")
    big = subprocess.Popen(
        [sys.executable, "-m", "cove", "worker", "--gateway", srv.url, "--token", token, "--name", "big",
         "--cpu", "1", "--memory", "2Gi", "--label", "pool=big", "--home", str(srv.home)],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    app = base / "app" / "app.py"
    app.parent.mkdir()
    app.write_text(APP)
    try:
        srv.wait_for(lambda: any(w["name"] == "big" and w["alive"] for w in srv.cli_json("worker", "list")), 30)
        yield srv, app
    finally:
        big.terminate()
        try:
            big.wait(timeout=20)
        except subprocess.TimeoutExpired:
            big.kill()
            big.wait()
        log.close()
        srv.stop()


def _refused(srv: Server, target: str) -> str:
    done = srv.cli("deploy", target, check=False)
    assert done.returncode != 0, done.stdout
    return " ".join((done.stdout + done.stderr).split())  # as one line, however the terminal wrapped it


def _error(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["type"] == "NoCapacity", error
    return str(error["message"])


def test_a_deploy_that_fits_works_without_warnings(cluster: tuple[Server, Path]) -> None:
    srv, app = cluster
    result = srv.deploy(f"{app}:fits")
    assert result["warnings"] == []
    with srv.http() as http:
        assert http.post("/endpoint/fits", json={}).json() == {"ok": True}


def test_impossible_memory_gpu_type_and_pool_are_refused_naming_the_need(cluster: tuple[Server, Path]) -> None:
    srv, app = cluster
    output = _refused(srv, f"{app}:huge")
    assert "memory 4 TiB (memory_mib 4194304) is more than any worker has: the largest worker has" in output
    assert "--force" in output
    output = _refused(srv, f"{app}:a10g")
    assert f"gpu A10G: the workers have 2×{H100}, none of type A10G" in output
    output = _refused(srv, f"{app}:elsewhere")
    assert "pool 'nowhere': no worker is in that pool (the workers' pools: (none), 'big')" in output
    names = {d["name"] for d in srv.cli_json("deployment", "list")}
    assert not names & {"huge", "a10g", "elsewhere"}
    # The API's answer: 422 NoCapacity, nothing stored.
    fits = srv.deploy(f"{app}:fits")
    body = {k: fits[k] for k in ("name", "kind", "module", "function", "image_id", "code_hash")}
    with srv.http() as http:
        reply = http.post(
            "/api/v1/deployments", json={**body, "name": "raw-huge", "config": {"memory_mib": 65536 * 64}}
        )
    assert "no worker can ever hold a container of this deployment: memory 4 TiB" in _error(reply, 422)


def test_forced_deploys_warn_and_their_calls_fail_fast_with_the_reason(cluster: tuple[Server, Path]) -> None:
    srv, app = cluster
    done = srv.cli("deploy", f"{app}:huge", "--force")
    assert "✓" in done.stdout
    warned = " ".join(done.stderr.split())
    assert "warning: no worker can hold a container of it now: memory 4 TiB" in warned, warned
    forced = srv.cli_json("deploy", f"{app}:a10g", "--force")
    assert len(forced["warnings"]) == 1 and "none of type A10G" in forced["warnings"][0]
    for name in ("a10g_fn", "huge_queue"):
        srv.cli("deploy", f"{app}:{name}", "--force")
    with srv.http() as http:
        for path, need in (("/endpoint/huge", "memory 4 TiB"), ("/endpoint/a10g", "none of type A10G")):
            started = time.monotonic()
            message = _error(http.post(path, json={}, timeout=60), 503)
            assert time.monotonic() - started < FAST
            assert need in message and "no worker can hold a container of" in message
        started = time.monotonic()
        call = http.post("/api/v1/functions/a10g-fn/calls", content=b"", timeout=60)
        assert "none of type A10G" in _error(call, 503)
        put = http.post("/taskqueue/huge-queue", json={"x": 1}, timeout=60)
        assert "memory 4 TiB" in _error(put, 503)
        assert time.monotonic() - started < FAST
    # Nothing was queued for a worker that will not come, and the deployments stay listed.
    names = {d["name"] for d in srv.cli_json("deployment", "list")}
    assert {"huge", "a10g", "a10g-fn", "huge-queue"} <= names


def test_a_waiting_call_fails_fast_once_the_only_workers_that_fit_are_cordoned(cluster: tuple[Server, Path]) -> None:
    srv, app = cluster
    srv.deploy(f"{app}:holder")  # holds the one core of worker big (min_containers=1)
    srv.wait_for(lambda: [c for c in srv.containers("holder") if c["state"] == "ready"], timeout=60)
    assert srv.deploy(f"{app}:waiter")["warnings"] == []  # big could hold it, once the holder is gone
    outcome: dict[str, Any] = {}

    def call() -> None:
        with srv.http() as http:
            outcome["reply"] = http.post("/endpoint/waiter", json={}, timeout=120)
            outcome["at"] = time.monotonic()

    caller = threading.Thread(target=call)
    caller.start()
    try:
        reasons = srv.wait_for(
            lambda: [c["reason"] for c in srv.containers("waiter") if c["state"] == "waiting"], timeout=20
        )
        assert reasons == ["no worker with 1000m cpu and 256 MiB memory free"]
        assert caller.is_alive()  # it waits for room: big may free up
        cordoned = time.monotonic()
        srv.cli("worker", "cordon", "big")
        caller.join(timeout=FAST)
        assert not caller.is_alive(), "the waiting call did not fail once nothing active could hold it"
        message = _error(outcome["reply"], 503)
        assert outcome["at"] - cordoned < FAST
        assert "only cordoned or draining workers could hold it (big)" in message
    finally:
        srv.cli("worker", "uncordon", "big")
        caller.join(timeout=120)
