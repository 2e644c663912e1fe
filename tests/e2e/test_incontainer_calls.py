"""Code inside a container calls other deployed functions, queues and endpoints, with a workspace token.

Real server, real containers (crun when the machine has it, and the process
engine): the calls leave the container only through the gateway's unix
socket mounted into it, and its token can do no more than its workspace's
user could.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import APPS, Server, start_server

from cove._net.gateway_socket import gateway_socket_path

NESTED = APPS / "nested" / "app.py"
DEPLOYED = ("nested_double", "nested_record", "nested_fan_out", "nested_endpoint", "nested_probe")


@pytest.fixture(scope="module")
def nested(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(NESTED, DEPLOYED, "nested_app") as module:
        yield module


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _runtime(server: Server) -> str:
    with server.http() as http:
        workers = http.get("/api/v1/workers").json()
    return str(workers[0]["runtime"])


def test_function_calls_remote_map_and_queue_from_inside(nested: ModuleType) -> None:
    result = nested.nested_fan_out.remote(5)
    assert result["one"] == 10
    assert result["many"] == [0, 2, 4, 6, 8]
    assert result["task"] == 1005
    assert result["gateway"].startswith("unix:")


def test_endpoint_calls_a_function_from_inside(nested: ModuleType, server: Server) -> None:
    with server.http() as http:
        reply = http.post("/endpoint/nested-endpoint", json={"x": 21})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"doubled": 42}


def test_container_token_is_scoped_to_its_workspace(nested: ModuleType, server: Server) -> None:
    with server.http() as http:
        made = http.post("/api/v1/tokens", json={"name": "other", "workspace": "nested-other"})
        assert made.status_code == 201, made.text
    other_token = made.json()["token"]
    server.cli("deploy", f"{NESTED}:nested_other_only", token=other_token)

    with server.http() as http:
        admin_id = http.get("/api/v1/whoami").json()["token_id"]
    probe = nested.nested_probe.remote(_port(server), admin_id)

    assert probe["token_is_set"]
    assert probe["site_is_last"]  # the image's own httpx/cloudpickle would win over the platform's
    assert probe["whoami"]["workspace"] == "default"
    assert probe["whoami"]["role"] == "user"  # never the admin token of the caller
    assert "nested-double" in probe["deployments"]
    assert "nested-other-only" not in probe["deployments"]
    assert probe["audit"] == 403
    assert probe["admin_token"] == 403
    assert probe["other_workspace_token"] == 403
    assert probe["image_gc"] == 403
    assert probe["user_token"] == 403  # a container's token makes no tokens, not even plain ones
    assert probe["revoke_admin"] == 403  # nor locks the operator out
    with server.http() as http:
        assert http.get("/api/v1/whoami").status_code == 200
    if _runtime(server) in ("crun", "runc"):
        # No network in the container: the gateway's TCP port is not there, only its socket.
        assert probe["tcp_to_gateway"] == "ConnectionRefusedError"


def _container_tokens(server: Server) -> list[dict[str, Any]]:
    with server.http() as http:
        rows: list[dict[str, Any]] = http.get("/api/v1/tokens").json()
    return [r for r in rows if r["name"].startswith("container:")]


def test_container_token_is_revoked_when_the_container_exits(nested: ModuleType, server: Server) -> None:
    nested.nested_double.remote(1)
    live = server.containers("nested-double")
    assert live
    container_id = live[0]["id"]
    [token] = [t for t in _container_tokens(server) if t["name"] == f"container:{container_id}"]
    assert token["revoked_at"] is None
    server.cli("deployment", "stop", "nested-double")
    server.wait_for(lambda: not server.containers("nested-double"), timeout=60)

    def revoked() -> bool:
        rows = [t for t in _container_tokens(server) if t["name"] == f"container:{container_id}"]
        return bool(rows) and rows[0]["revoked_at"] is not None

    server.wait_for(revoked, timeout=30)
    server.deploy(f"{NESTED}:nested_double")  # back for the other tests


def test_calls_from_inside_on_the_process_engine(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "cove", extra_env={"COVE_RUNTIME": "process"})
    try:
        with srv.deployed_app(NESTED, ("nested_double", "nested_record", "nested_fan_out"), "nested_app") as app:
            result = app.nested_fan_out.remote(3)
        assert result["one"] == 6 and result["many"] == [0, 2, 4] and result["task"] == 1003
        assert result["gateway"] == f"unix:{gateway_socket_path(srv.home)}"  # the host path: no mounts here
    finally:
        srv.stop()
