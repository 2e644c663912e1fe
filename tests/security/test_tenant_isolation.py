"""Every route of the published API, tried by workspace B with workspace A's ids and names.

The routes come from the running server's ``/api/openapi.json``; each has an
isolation decision in ``ROUTES``. A route added later without one fails
this test until someone classifies it. Workspace A owns a deployment of
each kind, a call, a map, a task, a volume with a file, a secret, a token,
an image, code, a blob and (where crun or runc runs) a sandbox; B's answers
must be 403/404 (or B's own, empty view), and A's view of its things must
be the same afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest
from conftest import Server

from cove import Image
from cove.sdk._packing import pack_directory
from cove.store._container_tokens import PREFIX as CONTAINER_TOKEN_PREFIX

pytestmark = pytest.mark.timeout(600)

APP = """
from cove import endpoint, function, task_queue

@endpoint
def iso_echo(x: int = 1) -> dict:
    return {"x": x}

@function
def iso_square(i: int) -> int:
    return i * i

@task_queue
def iso_tasks(n: int) -> dict:
    return {"n": n}
"""

# What B may see of A's things, per kind of route.
PUBLIC = "public: answers without a token and shows nothing of any workspace"
SELF = "self-scoped: answers about B itself, nothing of A"
LIST = "workspace-scoped list: B's own (empty) view, none of A's ids or names"
SCOPED = "workspace-scoped: B gets 404/403 (or 422 for A's image and code) with A's ids"
ADMIN = "admin-only: a member gets 403"
WORKER = "worker-only: a member gets 403"
OWN = "acts in B's own workspace: A's thing of the same name or hash stays as it was"
KINDS = (PUBLIC, SELF, LIST, SCOPED, ADMIN, WORKER, OWN)  # the order they are tried in


@dataclasses.dataclass
class World:
    """A's things (and the tokens of A and B) that B's requests name."""

    a: str
    b: str
    workspace: str
    image_id: str
    code_hash: str
    call_id: str
    map_id: str
    task_id: str
    container_id: str
    token_id: str
    blob: str
    worker_id: str
    sandbox_id: str
    hidden: str  # a value only A knows: its image's env var and its secret
    app_id: str
    app_name: str
    volume: str = "iso-volume"
    secret: str = "iso-secret"

    def markers(self) -> list[str]:
        """Strings of A's that no answer to B may contain."""
        found = [self.workspace, self.image_id, self.code_hash, self.call_id, self.map_id, self.task_id]
        found += [self.container_id, self.token_id, self.blob, self.hidden, self.volume, self.secret, self.app_id]
        found += ["iso-echo", "iso-square", "iso-tasks"]
        return found + ([self.sandbox_id] if not self.sandbox_id.startswith("missing") else [])

    def path_value(self, path: str, param: str) -> str:
        by_name = {
            "/deployments/": "iso-echo",
            "/endpoint/": "iso-echo",
            "/functions/": "iso-square",
            "/taskqueue/": "iso-tasks",
            "/secrets/": self.secret,
            "/volumes/": self.volume,
            "/workspaces/": self.workspace,
            "/reservoir/projects/": "iso-echo",
        }
        if param == "name":
            return next(value for prefix, value in by_name.items() if prefix in path)
        return {
            "image_id": self.image_id,
            "code_hash": self.code_hash,
            "call_id": self.call_id,
            "map_id": self.map_id,
            "task_id": self.task_id,
            "container_id": self.container_id,
            "token_id": self.token_id,
            "sha256": self.blob,
            "worker_id": self.worker_id,
            "ref": self.worker_id,
            "sandbox_id": self.sandbox_id,
            "app": self.app_id,
            "path": "data.txt",
            "rest": "fs/read",
            "version": "1",
            "filename": "iso_echo-1.0-py3-none-any.whl",
            "review_id": "1",
            "decision": "approve",
        }[param]


Request = Callable[[World], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Rule:
    kind: str
    expect: tuple[int, ...] = ()
    request: Request | None = None  # httpx keyword arguments: json, content, params
    stream: bool = False  # an answer that does not end (server-sent events): its first event is what is checked

    def statuses(self) -> tuple[int, ...]:
        defaults = {PUBLIC: (200,), SELF: (200,), LIST: (200,), SCOPED: (403, 404), ADMIN: (403,), WORKER: (403,)}
        return self.expect or defaults[self.kind]


def _deploy_with_a(w: World) -> dict[str, Any]:
    return {
        "json": {
            "name": "iso-echo",
            "module": "app",
            "function": "iso_echo",
            "image_id": w.image_id,
            "code_hash": w.code_hash,
        }
    }


def _sandbox_with_a(w: World) -> dict[str, Any]:
    return {"json": {"image_id": w.image_id, "code_hash": w.code_hash}}


def _pickled_args() -> bytes:
    """A call's body as the SDK sends it: pickled (args, kwargs)."""
    data: bytes = cloudpickle.dumps(((3,), {}))
    return data


def _pickled_call(w: World) -> dict[str, Any]:
    return {"content": _pickled_args()}


def _no_wait(w: World) -> dict[str, Any]:
    return {"params": {"wait": 0}}


ROUTES: dict[tuple[str, str], Rule] = {
    # images: shared by spec hash, seen and used only by the workspaces that asked for them
    ("POST", "/api/v1/images"): Rule(OWN, (200,), lambda w: {"json": {"spec": Image().spec()}}),
    ("GET", "/api/v1/images"): Rule(LIST),
    ("GET", "/api/v1/images/{image_id}"): Rule(SCOPED),
    ("DELETE", "/api/v1/images/{image_id}"): Rule(ADMIN),
    ("POST", "/api/v1/images/gc"): Rule(ADMIN),
    ("GET", "/api/v1/images/{image_id}/packages"): Rule(SCOPED),
    ("POST", "/api/v1/images/audit"): Rule(ADMIN),
    ("GET", "/api/v1/images/{image_id}/export"): Rule(WORKER),
    # code: per workspace; an upload must carry the bytes its hash names
    ("HEAD", "/api/v1/code/{code_hash}"): Rule(SCOPED, (404,)),
    ("PUT", "/api/v1/code/{code_hash}"): Rule(OWN, (400,), lambda w: {"content": b"not the archive"}),
    ("GET", "/api/v1/code/{code_hash}"): Rule(WORKER),
    # deployments and containers
    ("POST", "/api/v1/deployments"): Rule(SCOPED, (422,), _deploy_with_a),
    ("GET", "/api/v1/deployments"): Rule(LIST),
    ("GET", "/api/v1/deployments/{name}"): Rule(SCOPED),
    ("DELETE", "/api/v1/deployments/{name}"): Rule(SCOPED),
    ("POST", "/api/v1/deployments/{name}/stop"): Rule(SCOPED),
    ("POST", "/api/v1/deployments/{name}/rollback"): Rule(SCOPED, (404,), lambda w: {"json": {"to": 1}}),
    ("PUT", "/api/v1/deployments/{name}/traffic"): Rule(SCOPED, (404,), lambda w: {"json": {"weights": {"1": 100}}}),
    ("PATCH", "/api/v1/deployments/{name}/scaling"): Rule(SCOPED, (404,), lambda w: {"json": {"max_containers": 1}}),
    ("DELETE", "/api/v1/deployments/{name}/traffic"): Rule(SCOPED, (404,)),
    ("GET", "/api/v1/deployments/{name}/history"): Rule(SCOPED, (404,)),
    ("GET", "/api/v1/deployments/{name}/waiting"): Rule(SCOPED, (404,)),
    # the package reservoir: shared by every workspace and holding nothing of any; its changes are an admin's
    ("GET", "/api/v1/reservoir/indexes"): Rule(LIST),
    ("GET", "/api/v1/reservoir/projects"): Rule(LIST),
    ("GET", "/api/v1/reservoir/projects/{name}"): Rule(SCOPED, (404,)),
    ("GET", "/api/v1/reservoir/policy"): Rule(LIST),
    ("GET", "/api/v1/reservoir/stats"): Rule(LIST),
    ("GET", "/api/v1/reservoir/audit"): Rule(ADMIN),
    ("GET", "/api/v1/reservoir/audit/deployed"): Rule(ADMIN),  # names every workspace's deployments
    ("POST", "/api/v1/reservoir/files/{filename}/quarantine"): Rule(ADMIN, request=lambda w: {"json": {}}),
    ("POST", "/api/v1/reservoir/files/{filename}/release"): Rule(ADMIN),
    ("GET", "/api/v1/reservoir/bundles"): Rule(ADMIN),
    ("GET", "/api/v1/reservoir/reviews"): Rule(ADMIN),
    ("GET", "/api/v1/reservoir/reviews/{review_id}"): Rule(ADMIN),
    ("POST", "/api/v1/reservoir/reviews/{review_id}/{decision}"): Rule(ADMIN, request=lambda w: {"json": {}}),
    # apps: names are per workspace; B making an app named like A's makes B's own
    ("POST", "/api/v1/apps"): Rule(OWN, (201,), lambda w: {"json": {"name": w.app_name, "ephemeral": True}}),
    ("GET", "/api/v1/apps"): Rule(LIST),
    ("GET", "/api/v1/apps/{app}"): Rule(SCOPED),
    ("DELETE", "/api/v1/apps/{app}"): Rule(SCOPED),
    ("POST", "/api/v1/apps/{app}/heartbeat"): Rule(SCOPED),
    ("GET", "/api/v1/containers"): Rule(LIST),
    ("POST", "/api/v1/containers/{container_id}/stop"): Rule(SCOPED),
    # what a container's runner posts about itself: only into the container's own workspace
    ("POST", "/api/v1/containers/{container_id}/metrics"): Rule(SCOPED, (404,), lambda w: {"content": b"x 1\n"}),
    # (409 where the gateway exports no traces: it says so before looking the container up)
    ("POST", "/api/v1/containers/{container_id}/traces"): Rule(SCOPED, (404, 409), lambda w: {"json": {}}),
    ("GET", "/api/v1/logs"): Rule(SCOPED, (404,), lambda w: {"params": {"target": w.container_id}}),
    # tokens and audit
    ("POST", "/api/v1/tokens"): Rule(SCOPED, (403,), lambda w: {"json": {"workspace": w.workspace}}),
    ("GET", "/api/v1/tokens"): Rule(LIST),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule(SCOPED),
    ("GET", "/api/v1/whoami"): Rule(SELF),
    ("GET", "/api/v1/audit"): Rule(ADMIN),
    # workers
    ("POST", "/api/v1/workers/register"): Rule(
        WORKER, request=lambda w: {"json": {"name": "impostor", "cpu_millis": 1000, "memory_mib": 512}}
    ),
    ("GET", "/api/v1/workers"): Rule(WORKER),
    ("GET", "/api/v1/worker-pools"): Rule(WORKER),
    ("POST", "/api/v1/workers/prefetch"): Rule(ADMIN, request=lambda w: {"json": {"model": "org/name"}}),
    ("POST", "/api/v1/workers/{ref}/cordon"): Rule(ADMIN),
    ("POST", "/api/v1/workers/{ref}/uncordon"): Rule(ADMIN),
    ("POST", "/api/v1/workers/{ref}/drain"): Rule(ADMIN),
    ("GET", "/api/v1/workers/{worker_id}/orders"): Rule(WORKER, request=_no_wait),
    ("POST", "/api/v1/workers/{worker_id}/events"): Rule(WORKER, request=lambda w: {"json": {"events": []}}),
    ("POST", "/api/v1/workers/{worker_id}/heartbeat"): Rule(WORKER, request=lambda w: {"json": {}}),
    ("POST", "/api/v1/containers/{container_id}/logs"): Rule(WORKER, request=lambda w: {"json": {"lines": []}}),
    # calls, maps, tasks and schedules
    ("POST", "/api/v1/functions/{name}/calls"): Rule(SCOPED, request=_pickled_call),
    ("POST", "/api/v1/functions/{name}/stream"): Rule(SCOPED, request=_pickled_call),
    ("POST", "/taskqueue/{name}"): Rule(SCOPED, request=lambda w: {"json": {"n": 1}}),
    ("GET", "/api/v1/calls/{call_id}"): Rule(SCOPED),
    ("POST", "/api/v1/calls/{call_id}/cancel"): Rule(SCOPED),
    ("POST", "/api/v1/calls/{call_id}/output"): Rule(SCOPED, request=lambda w: {"content": b"forged"}),
    ("GET", "/api/v1/calls/{call_id}/output"): Rule(SCOPED),
    ("POST", "/api/v1/functions/{name}/maps"): Rule(SCOPED),
    ("POST", "/api/v1/maps/{map_id}/inputs"): Rule(SCOPED, request=lambda w: {"content": b""}),
    ("GET", "/api/v1/maps/{map_id}/outputs"): Rule(SCOPED, request=_no_wait),
    ("DELETE", "/api/v1/maps/{map_id}"): Rule(SCOPED),
    ("GET", "/api/v1/tasks/{task_id}"): Rule(SCOPED),
    ("GET", "/api/v1/tasks"): Rule(LIST),
    ("POST", "/api/v1/tasks/{task_id}/cancel"): Rule(SCOPED),
    ("POST", "/api/v1/tasks/{task_id}/retry"): Rule(SCOPED, (404,)),
    ("GET", "/api/v1/schedules"): Rule(LIST),
    # secrets and volumes: names are per workspace
    ("POST", "/api/v1/secrets"): Rule(OWN, (200, 201), lambda w: {"json": {"name": w.secret, "values": {"K": "b"}}}),
    ("GET", "/api/v1/secrets"): Rule(LIST),
    ("DELETE", "/api/v1/secrets/{name}"): Rule(SCOPED),
    ("GET", "/api/v1/volumes"): Rule(LIST),
    ("POST", "/api/v1/volumes"): Rule(OWN, (200, 201), lambda w: {"json": {"name": w.volume}}),
    ("DELETE", "/api/v1/volumes/{name}"): Rule(SCOPED),
    ("GET", "/api/v1/volumes/{name}/files"): Rule(SCOPED),
    ("PUT", "/api/v1/volumes/{name}/files/{path}"): Rule(OWN, (201,), lambda w: {"content": b"B's own bytes"}),
    ("GET", "/api/v1/volumes/{name}/files/{path}"): Rule(SCOPED),
    ("DELETE", "/api/v1/volumes/{name}/files/{path}"): Rule(SCOPED),
    # sandboxes
    ("POST", "/api/v1/sandboxes"): Rule(SCOPED, (422,), _sandbox_with_a),
    ("GET", "/api/v1/sandboxes"): Rule(LIST),
    ("GET", "/api/v1/sandboxes/{sandbox_id}"): Rule(SCOPED),
    ("DELETE", "/api/v1/sandboxes/{sandbox_id}"): Rule(SCOPED),
    ("GET", "/api/v1/sandboxes/{sandbox_id}/{rest}"): Rule(SCOPED),
    ("POST", "/api/v1/sandboxes/{sandbox_id}/{rest}"): Rule(SCOPED),
    ("PUT", "/api/v1/sandboxes/{sandbox_id}/{rest}"): Rule(SCOPED),
    ("DELETE", "/api/v1/sandboxes/{sandbox_id}/{rest}"): Rule(SCOPED),
    # quotas
    ("GET", "/api/v1/workspaces/{name}/quota"): Rule(SCOPED),
    ("PUT", "/api/v1/workspaces/{name}/quota"): Rule(ADMIN, request=lambda w: {"json": {"max_containers": 0}}),
    ("DELETE", "/api/v1/workspaces/{name}/quota"): Rule(ADMIN),
    # blobs: per workspace, named by their sha256
    ("PUT", "/api/v1/blobs/{sha256}"): Rule(OWN, (400,), lambda w: {"content": b"not A's blob"}),
    ("GET", "/api/v1/blobs/{sha256}"): Rule(SCOPED, (404,)),
    ("HEAD", "/api/v1/blobs/{sha256}"): Rule(SCOPED, (404,)),
    # operations
    ("GET", "/api/v1/gpus"): Rule(LIST),
    ("GET", "/api/v1/gpus/history"): Rule(LIST),
    ("GET", "/api/v1/events"): Rule(LIST),
    ("GET", "/api/v1/changes"): Rule(LIST, stream=True),
    ("GET", "/metrics"): Rule(SELF),
    ("GET", "/healthz"): Rule(PUBLIC),
    # endpoints: answered by the invocation path before routing, but listed in the document
    ("POST", "/endpoint/{name}"): Rule(SCOPED, (404,), lambda w: {"json": {"x": 2}}),
    ("POST", "/endpoint/{name}/v{version}"): Rule(SCOPED, (404,), lambda w: {"json": {"x": 2}}),
}


def _new_workspace(server: Server, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{secrets.token_hex(3)}"
    with server.http() as admin:
        reply = admin.post("/api/v1/tokens", json={"workspace": name, "name": prefix})
    assert reply.status_code == 201, reply.text
    return name, str(reply.json()["token"])


def _build(http: httpx.Client, spec: dict[str, Any]) -> str:
    with http.stream("POST", "/api/v1/images", json={"spec": spec}, timeout=600) as reply:
        for line in reply.iter_lines():
            event = json.loads(line) if line.strip() else {}
            if event.get("event") == "done":
                return str(event["image_id"])
    raise AssertionError(f"building {spec} failed")


def _code_hash(http: httpx.Client, folder: Path) -> str:
    deployed = http.get("/api/v1/deployments/iso-echo").json()
    assert deployed["code_hash"] == pack_directory(folder).sha256
    return str(deployed["code_hash"])


def _sandbox(http: httpx.Client, image_id: str, code_hash: str) -> str:
    reply = http.post("/api/v1/sandboxes", json={"image_id": image_id, "code_hash": code_hash, "timeout": 600})
    if reply.status_code == 503:
        return "missing-" + secrets.token_hex(4)  # no isolated engine here: B still must not find one
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


@pytest.fixture(scope="module")
def world(server: Server, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A's things, made once for the module."""
    workspace, a = _new_workspace(server, "iso-a")
    _, b = _new_workspace(server, "iso-b")
    folder = tmp_path_factory.mktemp("iso-app")
    (folder / "app.py").write_text(APP)
    for function in ("iso_echo", "iso_square", "iso_tasks"):
        server.cli("deploy", f"{folder / 'app.py'}:{function}", token=a)
    hidden = secrets.token_hex(12)
    blob = b"A's blob " + hidden.encode()
    with server.http(a) as http, server.http() as admin:
        image_id = _build(http, Image(env_vars={"ISO_HIDDEN": hidden}).spec())
        code_hash = _code_hash(http, folder)
        assert http.post("/endpoint/iso-echo", json={"x": 1}).status_code == 200
        call = http.post("/api/v1/functions/iso-square/calls", params={"wait": False}, content=_pickled_args())
        task = http.post("/taskqueue/iso-tasks", json={"n": 3})
        map_id = http.post("/api/v1/functions/iso-square/maps").json()["map_id"]
        assert http.post("/api/v1/volumes", json={"name": "iso-volume"}).status_code == 201
        assert http.put("/api/v1/volumes/iso-volume/files/data.txt", content=b"A's file").status_code == 201
        assert http.post("/api/v1/secrets", json={"name": "iso-secret", "values": {"K": hidden}}).status_code == 201
        token_id = http.post("/api/v1/tokens", json={"name": "iso-extra"}).json()["id"]
        sha = hashlib.sha256(blob).hexdigest()
        assert http.put(f"/api/v1/blobs/{sha}", content=blob).status_code in (200, 201)
        sandbox_id = _sandbox(http, image_id, code_hash)
        call_id, task_id = call.json()["call_id"], task.json()["task_id"]
        server.wait_for(lambda: http.get(f"/api/v1/calls/{call_id}", params={"wait": 5}).status_code == 200, 120)
        server.wait_for(lambda: http.get(f"/api/v1/tasks/{task_id}").json()["state"] == "COMPLETE", 120)
        container_id = next(c["id"] for c in http.get("/api/v1/containers", params={"all": True}).json() if c["id"])
        worker_id = admin.get("/api/v1/workers").json()[0]["id"]
        [app] = [row for row in http.get("/api/v1/apps").json() if "iso-echo" in row["deployments"]]
    return World(
        a=a,
        b=b,
        workspace=workspace,
        image_id=image_id,
        code_hash=code_hash,
        call_id=call_id,
        map_id=map_id,
        task_id=task_id,
        container_id=container_id,
        token_id=token_id,
        blob=sha,
        worker_id=worker_id,
        sandbox_id=sandbox_id,
        hidden=hidden,
        app_id=app["id"],
        app_name=app["name"],
    )


def a_view(http: httpx.Client, w: World) -> dict[str, Any]:
    """What A sees of its things; B's requests must leave all of it as it was."""
    view: dict[str, Any] = {
        "deployments": sorted(
            (d["name"], d["version"], d["state"], d["image_id"], d["code_hash"])
            for d in http.get("/api/v1/deployments").json()
        ),
        "volumes": sorted(v["name"] for v in http.get("/api/v1/volumes").json()),
        "file": http.get(f"/api/v1/volumes/{w.volume}/files/data.txt").content,
        "secrets": sorted(json.dumps(s, sort_keys=True) for s in http.get("/api/v1/secrets").json()),
        # A container's token is revoked when its container stops, which idle scale-down may do at any time;
        # the tokens A made itself must keep their state.
        "tokens": sorted(
            (t["id"], None if t["name"].startswith(CONTAINER_TOKEN_PREFIX) else t["revoked_at"])
            for t in http.get("/api/v1/tokens").json()
        ),
        "task": {k: v for k, v in http.get(f"/api/v1/tasks/{w.task_id}").json().items() if k in ("state", "result")},
        "call": http.get(f"/api/v1/calls/{w.call_id}").content,
        "image": http.get(f"/api/v1/images/{w.image_id}").json()["spec"],
        "code": http.head(f"/api/v1/code/{w.code_hash}").status_code,
        "blob": http.get(f"/api/v1/blobs/{w.blob}").content,
        "endpoint": http.post("/endpoint/iso-echo", json={"x": 5}).json(),
        "apps": sorted((a["id"], a["name"], tuple(a["deployments"])) for a in http.get("/api/v1/apps").json()),
    }
    if not w.sandbox_id.startswith("missing"):
        view["sandbox"] = http.get(f"/api/v1/sandboxes/{w.sandbox_id}").json()["state"]
    return view


def published_routes(server: Server) -> set[tuple[str, str]]:
    with server.http() as http:
        document = http.get("/api/openapi.json").json()
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def test_every_published_route_has_an_isolation_decision(server: Server) -> None:
    published = published_routes(server)
    missing = sorted(published - set(ROUTES))
    assert not missing, (
        f"classify these routes in ROUTES of {Path(__file__).name} (who may reach whose data through them): "
        + ", ".join(f"{m} {p}" for m, p in missing)
    )
    stale = sorted(set(ROUTES) - published)
    assert not stale, "these ROUTES entries are no longer published; remove them: " + ", ".join(
        f"{m} {p}" for m, p in stale
    )


def _call(http: httpx.Client, method: str, template: str, rule: Rule, w: World) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda m: w.path_value(template, m.group(1)), template)
    extra = rule.request(w) if rule.request else {}
    if rule.stream:
        with http.stream(method, path, **extra) as answer:
            first = next(answer.iter_bytes(), b"")
            return httpx.Response(answer.status_code, content=first)
    return http.request(method, path, **extra)


def test_workspace_b_reaches_nothing_of_workspace_a(server: Server, world: World) -> None:
    routes = {k: v for k, v in ROUTES.items() if k in published_routes(server)}
    with server.http(world.a) as a:
        before = a_view(a, world)
    problems: list[str] = []
    anonymous = httpx.Client(base_url=server.url, timeout=60)
    with server.http(world.b) as b, anonymous:
        for kind in KINDS:
            for (method, template), rule in routes.items():
                if rule.kind != kind:
                    continue
                reply = _call(anonymous if kind == PUBLIC else b, method, template, rule, world)
                label = f"{method} {template} ({kind.split(':')[0]})"
                if reply.status_code not in rule.statuses():
                    problems.append(f"{label}: {reply.status_code} {reply.text[:200]}")
                # Error answers echo the ids B sent; views of B's own must name nothing of A's.
                markers = world.markers() if kind in (PUBLIC, SELF, LIST) else [world.hidden]
                leaked = [m for m in markers if m in reply.text]
                if leaked:
                    problems.append(f"{label}: the answer names A's {leaked}")
        assert b.get("/api/v1/whoami").json()["workspace"] != world.workspace
    with server.http(world.a) as a:
        after = a_view(a, world)
    assert not problems, "\n".join(problems)
    assert after == before
