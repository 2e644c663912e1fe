"""Functions whose bodies call other deployed functions, queues and endpoints from inside their containers."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from cove import endpoint, function, task_queue


@function
def nested_double(x: int) -> int:
    return 2 * x


@task_queue
def nested_record(x: int) -> int:
    return x + 1000


@function
def nested_fan_out(n: int) -> dict[str, Any]:
    """Calls a function with .remote and .map, and puts onto a task queue, all from inside a container."""
    task = nested_record.put(n)
    return {
        "one": nested_double.remote(n),
        "many": list(nested_double.map(range(n))),
        "task": task.result(timeout=120),
        "gateway": os.environ.get("COVE_GATEWAY", ""),
    }


@endpoint
def nested_endpoint(x: int) -> dict[str, Any]:
    return {"doubled": nested_double.remote(x)}


@function
def nested_probe(port: int, admin_token_id: str = "") -> dict[str, Any]:
    """What this container's own token may do, and whether the gateway's TCP port is reachable from here."""
    from cove.sdk.client import Client

    http = Client.shared()._http

    def status(method: str, path: str, **kwargs: Any) -> int:
        return http.request(method, path, **kwargs).status_code

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        tcp = "connected"
    except OSError as exc:
        tcp = type(exc).__name__
    return {
        "whoami": http.get("/api/v1/whoami").json(),
        "deployments": sorted(d["name"] for d in http.get("/api/v1/deployments").json()),
        "audit": status("GET", "/api/v1/audit"),
        "admin_token": status("POST", "/api/v1/tokens", json={"name": "escalate", "role": "admin"}),
        "other_workspace_token": status("POST", "/api/v1/tokens", json={"name": "hop", "workspace": "nested-other"}),
        "image_gc": status("POST", "/api/v1/images/gc"),
        "user_token": status("POST", "/api/v1/tokens", json={"name": "plain"}),
        "revoke_admin": status("DELETE", f"/api/v1/tokens/{admin_token_id}") if admin_token_id else None,
        "tcp_to_gateway": tcp,
        "token_is_set": bool(os.environ.get("COVE_TOKEN")),
        "site_is_last": sys.path[-1] == os.environ.get("COVE_PLATFORM_SITE"),
    }


@function
def nested_other_only(x: int) -> int:
    """Deployed only into a second workspace: the first workspace's containers must not see it."""
    return x
