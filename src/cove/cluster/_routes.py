"""What a gateway that does not lead answers itself; everything else goes to the leader.

It answers what the database alone can answer: reads of the control API,
task status and results (woken by NOTIFY), and task puts, ``.spawn``,
``.remote`` calls and ``.map`` inputs (committed as unclaimed rows the leader
takes; a waiting ``.remote`` is answered when the NOTIFY of its end comes, a
map's outputs are read from the store after the caller's cursor). Endpoint
invocations it relays to ready containers itself, asking the leader for
containers when none is ready (``cove.gateway._follower_slots``); a map it
cancels in the store, where the leader looks when woken. A running call's
live output it reads from the leader itself, that output only
(``cove.gateway._follower_output``). Web apps (``/asgi/``, served in front
of this routing), ``.remote_gen`` streams and the requests to a sandbox's
agent it relays to their containers too. A quota it reads from the store
(the limits' row, and the containers as the leader wrote them). The output
containers post, creating, listing and ending sandboxes, the worker API and
every change to what runs need the leader's live scheduler, so they are
forwarded.
"""

from __future__ import annotations

from typing import Any

from .._wire.urls import ASGI_PREFIX

_LOCAL_PATHS = frozenset({"/healthz", "/metrics", "/api/docs", "/redoc", "/api/openapi.json"})
# Reads that show the leader's live state (workers, the pool controller's worker pools, containers and their
# logs, sandboxes, GPUs and their history).
_LIVE_READS = (
    "/api/v1/workers",
    "/api/v1/worker-pools",
    "/api/v1/containers",
    "/api/v1/logs",
    "/api/v1/sandboxes",
    "/api/v1/gpus",
)
_RESERVOIR = "/reservoir"
_SANDBOXES = "/api/v1/sandboxes/"
_WORKERS = "/api/v1/workers/"
_ENDPOINT = "/endpoint/"
_FUNCTIONS = "/api/v1/functions/"
_CALLS = "/calls"
_MAPS = "/maps"
_STREAM = "/stream"
_MAP_PREFIX = "/api/v1/maps/"
_INPUTS = "/inputs"
_CALLS_PREFIX = "/api/v1/calls/"
_OUTPUT = "/output"


def _is_call(path: str) -> bool:
    """``.remote``/``.spawn`` (``POST /api/v1/functions/{name}/calls``), a new ``.map`` or a map's inputs, a stream.

    Each is committed as rows the leader runs, but a ``.remote_gen`` stream
    (``/stream``), which is relayed to a ready container as an endpoint call is.
    """
    if path.startswith(_FUNCTIONS):
        return path.endswith((_CALLS, _MAPS, _STREAM))
    return path.startswith(_MAP_PREFIX) and path.endswith(_INPUTS)


def _leader_state(path: str) -> bool:
    """A read of what only the leader holds: workers, containers and their logs, a sandbox's deadlines.

    (A quota is read from the store: its limits, and the containers as the leader wrote them.)
    """
    return path.startswith(_LIVE_READS) and not _is_agent_request(path)


def _is_agent_request(path: str) -> bool:
    """``/api/v1/sandboxes/{id}/...``: a request to a sandbox's agent (exec, files), relayed to its container."""
    return path.startswith(_SANDBOXES) and "/" in path[len(_SANDBOXES) :].strip("/")


def served_by_follower(scope: dict[str, Any]) -> bool:
    """True when a gateway that does not lead may answer this HTTP request itself."""
    path: str = scope["path"]
    method: str = scope["method"]
    if path in _LOCAL_PATHS or path == _RESERVOIR or path.startswith(_RESERVOIR + "/"):
        return True
    if _is_agent_request(path):
        return True
    if method in ("GET", "HEAD"):
        return path.startswith("/api/") and not _leader_state(path)
    if method == "POST":
        return path.startswith(("/taskqueue/", _ENDPOINT)) or _is_call(path)
    if method == "DELETE":  # cancelling a map: marked in the store, which the leader looks at when woken
        return path.startswith(_MAP_PREFIX)
    return False


def forwarded_route(path: str) -> str:
    """The ``route`` label of a request the leader got from another gateway: what kind of data-plane call it was."""
    if path.startswith(_ENDPOINT):
        return "endpoint"
    if path.startswith(_CALLS_PREFIX) and path.endswith(_OUTPUT):
        return "output"  # a container posting what its call printed: the leader holds it
    if path.startswith(ASGI_PREFIX):
        return "asgi"
    if path.startswith(_SANDBOXES):
        return "sandbox"
    if path.startswith(_WORKERS):
        return "worker"  # a worker that talks to this gateway: registration, orders, events, heartbeats
    if path.startswith((_FUNCTIONS, _CALLS_PREFIX, "/taskqueue/", _MAP_PREFIX)):
        return "call"
    return "other"
