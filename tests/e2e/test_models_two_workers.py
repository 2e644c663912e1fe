"""Model weights on two workers: placement prefers the worker that holds them, and each worker fetches once.

A real server (its local worker offers 4 cores) and a second worker with a
home of its own (2 cores; best fit prefers it, the fuller one, for anything
that fits both). With the second worker cordoned, a deployment with a model
starts on the server's worker, which fetches every file of the model once
from the reservoir (its access log counts ``resolve`` requests). Its
container is stopped and the second worker uncordoned: a new container of
another deployment with that model goes to the worker holding the weights
although best fit alone would choose the other (a deployment without models
lands there, showing it). Then the server's worker is cordoned: the next
container goes to the second worker, which fetches each file exactly once,
and a second container there fetches nothing and shares its copy (same inode).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, start_server

from .test_models_e2e import _call, _repository

pytestmark = pytest.mark.timeout(600)

APP = """
import hashlib
import os

from cove import Model, endpoint

NEAR = Model("acme/near", revision="main")


def _report() -> dict:
    snapshot = NEAR.path()
    files = {}
    for folder, _dirs, names in os.walk(snapshot):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, snapshot)] = hashlib.sha256(f.read()).hexdigest()
    return {"files": files, "inode": os.stat(os.path.join(snapshot, "model.safetensors")).st_ino}


@endpoint(models=[NEAR], cpu=0.25, memory=256)
def near_first() -> dict:
    return _report()


@endpoint(models=["acme/near@main"], cpu=0.25, memory=256)
def near_again() -> dict:
    return _report()


@endpoint(models=["acme/near"], cpu=0.25, memory=256)
def near_there() -> dict:
    return _report()


@endpoint(models=[NEAR], cpu=0.25, memory=256)
def near_there_again() -> dict:
    return _report()


@endpoint(cpu=0.25, memory=256)
def plain() -> dict:
    return {}
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server that logs each request, with its local worker (4 cores) and a worker ``second`` (2 cores)
    that has a home of its own: the server and the second worker's home."""
    root = tmp_path_factory.mktemp("two-workers")
    server = start_server(root / "cove", None, {"COVE_ACCESS_LOG": "1"}, "--worker-cpu", "4", "--worker-memory", "4Gi")
    home = root / "second"
    worker: subprocess.Popen[bytes] | None = None
    try:
        token = server.cli_json("token", "create", "--name", "worker-second", "--role", "worker")["token"]
        with (root / "second.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "cove", "worker", "--gateway", server.url, "--token", token,
                 "--name", "second", "--cpu", "2000m", "--memory", "4Gi", "--home", str(home),
                 "--advertise-host", "127.0.0.1"],
                env={**server.env, "COVE_TOKEN": "", "COVE_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server.wait_for(lambda: len([w for w in server.cli_json("worker", "list") if w["alive"]]) == 2, timeout=60)
        yield server, home
    finally:
        if worker is not None:
            _stop(worker)
        server.stop()


def _resolves(server: Server) -> list[str]:
    """The files of acme/near the reservoir has served, one entry per download."""
    log = (server.home / "test-server.log").read_text(errors="replace")
    return re.findall(r"GET /reservoir/acme/near/resolve/\S+?/(\S+) 200", log)


def _worker_of(server: Server, deployment: str) -> str:
    (row,) = [c for c in server.containers(deployment) if c["state"] in ("ready", "listening")]
    return str(row["worker_id"])


def _placed(server: Server, deployment: str) -> dict[str, Any]:
    with server.http() as http:
        events = http.get("/api/v1/events", params={"deployment": deployment, "limit": 1000}).json()["events"]
    placed = [e for e in events if e["kind"] == "placed"]
    assert len(placed) == 1, placed
    return dict(placed[0])


def _holds(server: Server, worker: str, model: str) -> bool:
    return any(w["name"] == worker and model in w["models"] for w in server.cli_json("worker", "list"))


def test_placement_prefers_the_worker_with_the_weights_and_each_worker_fetches_once(
    two_workers: tuple[Server, Path], tmp_path: Path
) -> None:
    server, second_home = two_workers
    digests = _repository(tmp_path / "near", "near", weights_mib=3)
    server.cli_json("reservoir", "model", "add", "acme/near", str(tmp_path / "near"), "--revision", "main")
    app = tmp_path / "app.py"
    app.write_text(APP)
    for name in ("near_first", "near_again", "near_there", "near_there_again", "plain"):
        server.deploy(f"{app}:{name}")
    ids = {w["name"]: w["id"] for w in server.cli_json("worker", "list")}
    local = next(name for name in ids if name != "second")

    # Only the server's worker takes containers: it fetches the model, every file once.
    server.cli("worker", "cordon", "second")
    first = _call(server, "near-first")
    assert first["files"] == digests
    assert _worker_of(server, "near-first") == ids[local]
    assert sorted(_resolves(server)) == sorted(digests)
    server.wait_for(lambda: _holds(server, local, "acme/near@main"), timeout=30)

    # Both workers take containers again; the first container is gone. Best fit alone prefers the second
    # worker (the fuller one), as a deployment without models shows ...
    server.cli("worker", "uncordon", "second")
    server.cli("stop", server.containers("near-first")[0]["id"])
    server.wait_for(lambda: not server.containers("near-first"), timeout=60)
    _call(server, "plain")
    assert _worker_of(server, "plain") == ids["second"]
    # ... but a container with the model goes where its weights are, and nothing is fetched.
    again = _call(server, "near-again")
    assert _worker_of(server, "near-again") == ids[local]
    assert again["files"] == digests and again["inode"] == first["inode"]
    assert "its weight cache holds 1 of the 1 model(s)" in _placed(server, "near-again")["reason"]
    assert sorted(_resolves(server)) == sorted(digests)

    # Only the second worker takes containers: it fetches every file exactly once, for its first container ...
    server.cli("worker", "cordon", local)
    there = _call(server, "near-there")
    assert _worker_of(server, "near-there") == ids["second"]
    assert there["files"] == digests
    assert sorted(_resolves(server)) == sorted([*digests, *digests])
    # ... and none for the next one, which shares the copy; the two workers' copies are their own.
    there_again = _call(server, "near-there-again")
    assert _worker_of(server, "near-there-again") == ids["second"]
    assert there_again["files"] == digests and there_again["inode"] == there["inode"]
    assert sorted(_resolves(server)) == sorted([*digests, *digests])
    blob = next(second_home.glob("**/weights/blobs")) / digests["model.safetensors"]
    assert blob.is_file()
    server.wait_for(lambda: _holds(server, "second", "acme/near@main"), timeout=30)
    server.cli("worker", "uncordon", local)
