"""Quotas and bounds: no spec, number or upload lets one workspace take what the cluster cannot give.

Real servers: the shared one (with a workspace of the tests' own where limits change) and, where the
worker's size or the operator's default quota matters, servers of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, start_server

from cove._wire.config import DeploymentConfig
from cove.exceptions import ConfigError
from cove.sdk._packing import pack_directory

WORKSPACE = "bounds-ws"
MiB = 1024 * 1024

TINY_APP = """
from cove import endpoint

@endpoint(cpu=0.25, keep_warm_seconds=1)
def tiny() -> dict:
    return {"ok": True}
"""

ROOMY_APP = """
import os
from cove import endpoint

@endpoint(cpu=1.5, keep_warm_seconds=600)
def holder() -> dict:
    return {"container": os.environ.get("COVE_CONTAINER_ID")}

@endpoint(cpu=1.5)
def newcomer() -> dict:
    return {"container": os.environ.get("COVE_CONTAINER_ID")}
"""


def _deploy_tiny(server: Server, folder: Path, token: str | None = None) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(TINY_APP)
    result: dict[str, Any] = server.cli_json("deploy", f"{folder / 'app.py'}:tiny", token=token)
    return result


@pytest.fixture(scope="module")
def member(server: Server) -> str:
    """A user token of a workspace of the tests' own."""
    return server.user_token(WORKSPACE)


@pytest.fixture(scope="module")
def tiny(server: Server, member: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real deployment of the member's workspace: its image and code make raw deploys reach every check."""
    return _deploy_tiny(server, tmp_path_factory.mktemp("tiny"), token=member)


def _raw_deploy(server: Server, token: str, tiny: dict[str, Any], config_json: str) -> httpx.Response:
    """POST a deployment whose config is given as JSON text, so numbers like 1e309 reach the gateway as written."""
    body = (
        '{"name": "raw", "module": "app", "function": "tiny", '
        f'"image_id": "{tiny["image_id"]}", "code_hash": "{tiny["code_hash"]}", "config": {config_json}}}'
    )
    with server.http(token=token) as http:
        return http.post("/api/v1/deployments", content=body, headers={"Content-Type": "application/json"})


def _refused(reply: httpx.Response, status: int, *words: str) -> str:
    assert reply.status_code == status, reply.text
    message = str(reply.json()["error"]["message"])
    for word in words:
        assert word in message, message
    return message


def test_impossible_specs_are_refused_at_deploy_naming_the_field(server: Server, member: str, tiny: Any) -> None:
    _refused(_raw_deploy(server, member, tiny, '{"cpu_millis": 1000000000000}'), 422, "cpu_millis", "1024000")
    _refused(_raw_deploy(server, member, tiny, f'{{"memory_mib": {999 * 1024 * 1024}}}'), 422, "memory_mib", "MiB")
    # Within the bounds, but more than the largest worker (the shared server's offers 64 cores).
    _refused(_raw_deploy(server, member, tiny, '{"cpu_millis": 200000}'), 422, "cpu_millis", "more than any worker")
    # A decorator says it in the user's own terms before anything is sent.
    with pytest.raises(ConfigError, match=r"cpu=1000000000: cpu_millis must be from 1 to 1024000"):
        DeploymentConfig.build("endpoint", cpu=10**9)
    with pytest.raises(ConfigError, match=r"memory='999Ti': memory_mib must be from 1 to"):
        DeploymentConfig.build("endpoint", memory="999Ti")
    names = {d["name"] for d in server.cli_json("deployment", "list", token=member)}
    assert "raw" not in names


@pytest.mark.parametrize(
    ("config_json", "field"),
    [
        ('{"timeout": 1e309}', "timeout"),
        ('{"keep_warm_seconds": 1e309}', "keep_warm_seconds"),
        (f'{{"cpu_millis": {10**40}}}', "cpu_millis"),
        (f'{{"max_pending_tasks": {10**40}}}', "max_pending_tasks"),
        (f'{{"concurrent_requests": {10**40}}}', "concurrent_requests"),
        (f'{{"autoscaler": {{"min_containers": 0, "max_containers": {10**40}}}}}', "max_containers"),
        ('{"task_policy": {"ttl": 1e309}}', "ttl"),
        ('{"task_policy": {"backoff": 1e309}}', "backoff"),
    ],
)
def test_overflowing_and_out_of_range_numbers_are_422_not_500(
    server: Server, member: str, tiny: Any, config_json: str, field: str
) -> None:
    _refused(_raw_deploy(server, member, tiny, config_json), 422, field)


def test_minus_one_keeps_its_documented_meaning_and_nothing_else_below_the_range(
    server: Server, member: str, tiny: Any
) -> None:
    for config_json, field in (
        ('{"timeout": -5}', "timeout"),
        ('{"timeout": 0}', "timeout"),
        ('{"cpu_millis": 1e309}', "cpu_millis"),
    ):
        _refused(_raw_deploy(server, member, tiny, config_json), 422, field)
    config = '{"timeout": -1, "keep_warm_seconds": -1, "autoscaler": {"min_containers": 0, "max_containers": 1}}'
    reply = _raw_deploy(server, member, tiny, config)
    assert reply.status_code == 201, reply.text
    assert reply.json()["config"]["timeout"] == -1 and reply.json()["config"]["keep_warm_seconds"] == -1
    with server.http(token=member) as http:
        assert http.delete("/api/v1/deployments/raw").status_code == 200


def test_a_million_containers_is_refused(server: Server, member: str, tiny: Any) -> None:
    million = '{"autoscaler": {"min_containers": 1000000, "max_containers": 1000000}}'
    _refused(_raw_deploy(server, member, tiny, million), 422, "min_containers", "from 0 to 1000")
    # Within the bound, but past the default quota every workspace gets (100 containers).
    shown = server.cli_json("workspace", "quota", "show", token=member)
    assert shown["default"] is True and shown["max_containers"] == 100, shown
    floor = '{"autoscaler": {"min_containers": 500, "max_containers": 500}}'
    _refused(_raw_deploy(server, member, tiny, floor), 403, "quota exceeded", "500 containers, quota allows 100")


def test_a_misspelled_quota_field_is_422_and_changes_nothing(server: Server, member: str) -> None:
    with server.http() as http:
        path = f"/api/v1/workspaces/{WORKSPACE}/quota"
        assert http.put(path, json={"max_containers": 5, "max_cpu_millis": 4000}).status_code == 200
        reply = http.put(path, json={"max_container": 1})
        _refused(reply, 422, "max_container")
        shown = http.get(path).json()
        assert (shown["max_containers"], shown["max_cpu_millis"], shown["default"]) == (5, 4000, False)
        assert http.delete(path).status_code == 200


def test_uploads_past_a_disk_quota_are_refused_and_leave_nothing(server: Server, member: str, tmp_path: Path) -> None:
    limits = {"max_volume_bytes": MiB, "max_blob_bytes": MiB, "max_code_bytes": 1}
    with server.http() as admin:
        assert admin.put(f"/api/v1/workspaces/{WORKSPACE}/quota", json=limits).status_code == 200
    try:
        with server.http(token=member) as http:
            first = http.put("/api/v1/volumes/quota-vol/files/a.bin", content=os.urandom(600 * 1024))
            assert first.status_code == 201, first.text
            second = http.put("/api/v1/volumes/quota-vol/files/b.bin", content=os.urandom(600 * 1024))
            message = _refused(second, 413, "volume storage quota exceeded", str(MiB))
            assert second.json()["error"]["type"] == "QuotaExceeded", message
            assert http.get("/api/v1/volumes/quota-vol/files/b.bin").status_code == 404
            assert [f["name"] for f in http.get("/api/v1/volumes/quota-vol/files").json()] == ["a.bin"]
            spool = server.home / "volumes" / ".incoming"
            assert not spool.exists() or not list(spool.iterdir())

            blob = os.urandom(MiB + 1)
            digest = hashlib.sha256(blob).hexdigest()
            _refused(http.put(f"/api/v1/blobs/{digest}", content=blob), 413, "blob storage quota exceeded")
            assert http.head(f"/api/v1/blobs/{digest}").status_code == 404

            (tmp_path / "src").mkdir()
            (tmp_path / "src" / "app.py").write_text(f"# {os.urandom(8).hex()}\n")
            packed = pack_directory(tmp_path / "src")
            _refused(http.put(f"/api/v1/code/{packed.sha256}", content=packed.data), 413, "code storage quota")
            assert http.head(f"/api/v1/code/{packed.sha256}").status_code == 404
            usage = server.cli_json("workspace", "quota", "show", token=member)["disk"]
            assert usage["volume_bytes"] == 600 * 1024 and usage["blob_bytes"] == 0
    finally:
        with server.http() as admin:
            admin.delete(f"/api/v1/workspaces/{WORKSPACE}/quota")


def test_local_worker_offers_this_machines_cores_and_the_default_quota_is_the_operators(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "cove", None, {"COVE_DEFAULT_QUOTA": json.dumps({"max_containers": 3})})
    try:
        workers = srv.cli_json("worker", "list")
        assert [w["cpu_millis"] for w in workers] == [len(os.sched_getaffinity(0)) * 1000]
        shown = srv.cli_json("workspace", "quota", "show")
        assert shown["default"] is True and shown["max_containers"] == 3
        assert shown["max_cpu_millis"] == 64_000  # a field the operator left out keeps the shipped default
        tiny = _deploy_tiny(srv, tmp_path / "app")
        floor = '{"autoscaler": {"min_containers": 5, "max_containers": 5}, "cpu_millis": 10}'
        _refused(_raw_deploy(srv, srv.token, tiny, floor), 403, "5 containers, quota allows 3")
    finally:
        srv.stop()


def test_an_idle_warm_container_gives_way_to_work_waiting_for_room(tmp_path: Path) -> None:
    # Two cores: the idle `holder` (1.5 cores, kept warm for 10 minutes) leaves no room for `newcomer`.
    srv = start_server(tmp_path / "cove", None, None, "--worker-cpu", "2")
    try:
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "app.py").write_text(ROOMY_APP)
        for name in ("holder", "newcomer"):
            srv.deploy(f"{tmp_path / 'app' / 'app.py'}:{name}")
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.token}"}, timeout=90) as http:
            held = http.post("/endpoint/holder", json={})
            assert held.status_code == 200, held.text
            started = time.monotonic()
            reply = http.post("/endpoint/newcomer", json={})
            waited = time.monotonic() - started
        assert reply.status_code == 200, reply.text
        assert waited < 60, f"newcomer waited {waited:.0f} s for room"
        rows = [r for r in srv.cli_json("ps", "--all") if r["deployment"] == "holder"]
        assert any("gave its room to 'newcomer'" in (r.get("reason") or "") for r in rows), rows
    finally:
        srv.stop()
