"""What a gateway that does not lead answers itself; everything else goes to the leader.

It answers what the database alone can answer: reads of the control API,
task status and results (woken by NOTIFY), and durable task puts and spawns
(committed as unclaimed rows the leader takes). Endpoint invocations it
relays to ready containers itself (``cove.gateway._follower_slots``), handing
only cold ones to the leader. ``.remote`` calls and their live output,
quotas (the leader enforces them), maps, sandboxes, the worker API and every
change to what runs need the leader's live scheduler, so they are forwarded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

_LOCAL_PATHS = frozenset({"/healthz", "/metrics", "/api/docs", "/redoc", "/api/openapi.json"})
# Reads that show the leader's live state (workers, containers and their logs, maps, sandboxes).
_LIVE_READS = ("/api/v1/workers", "/api/v1/containers", "/api/v1/logs", "/api/v1/maps/", "/api/v1/sandboxes")
_RESERVOIR = "/reservoir"
_ENDPOINT = "/endpoint/"
_FUNCTIONS = "/api/v1/functions/"
_CALLS = "/calls"
_CALLS_PREFIX = "/api/v1/calls/"
_OUTPUT = "/output"
_WORKSPACES = "/api/v1/workspaces/"
_QUOTA = "/quota"
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _is_spawn(path: str, query: bytes) -> bool:
    """``POST /api/v1/functions/{name}/calls?wait=false``: a durable call nobody waits on."""
    if not (path.startswith(_FUNCTIONS) and path.endswith(_CALLS)):
        return False
    wait = parse_qs(query.decode("latin-1")).get("wait", [])
    return bool(wait) and wait[-1].lower() in _FALSE


def _leader_state(path: str) -> bool:
    """A read of what only the leader holds: a running call's live output, a quota with its live usage."""
    return (path.startswith(_CALLS_PREFIX) and path.endswith(_OUTPUT)) or (
        path.startswith(_WORKSPACES) and path.endswith(_QUOTA)
    )


def served_by_follower(scope: dict[str, Any]) -> bool:
    """True when a gateway that does not lead may answer this HTTP request itself."""
    path: str = scope["path"]
    method: str = scope["method"]
    if path in _LOCAL_PATHS or path == _RESERVOIR or path.startswith(_RESERVOIR + "/"):
        return True
    if method in ("GET", "HEAD"):
        return path.startswith("/api/") and not path.startswith(_LIVE_READS) and not _leader_state(path)
    if method == "POST":
        return path.startswith(("/taskqueue/", _ENDPOINT)) or _is_spawn(path, scope.get("query_string", b""))
    return False
