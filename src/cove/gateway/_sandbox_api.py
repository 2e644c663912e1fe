"""``/api/v1/sandboxes``: create, list, terminate, and talk to a sandbox's agent.

A sandbox is an ephemeral deployment of kind ``sandbox``: one container
(autoscaler min = max = 1, never idled out by the scheduler) whose process is
the sandbox agent rather than a user function. The gateway keeps its
deadlines here (``timeout`` from creation, ``idle_timeout`` since the last
request) and stops the deployment when one passes. Requests under
``/api/v1/sandboxes/{id}/...`` are relayed to the agent unchanged. Sandboxes
run only on isolated engines: on the process engine the agent would run
hostile commands as the worker's own user.

Creating, listing and ending sandboxes happen on the leader, which keeps the
deadlines. Any gateway relays the requests to a sandbox's agent
(``_sandbox_follower``); the containers another gateway relayed to are in its
demand reports, and count here as activity against ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from .._wire import api as wire
from .._wire.config import DeploymentConfig
from .._wire.defaults import defaults_for, stored
from .._wire.sizes import parse_cpu, parse_memory
from ..exceptions import ConfigError, NotFound
from ..scheduler import StartFailed
from ..store import Deployment, Principal, new_id
from ._body import RequestBody
from ._control import may_see_image
from ._deps import GatewayDep, PrincipalDep
from ._error_responses import ErrorBody
from ._errors import ApiError
from ._references import check_references
from ._sandbox_follower import relay_from_follower
from ._sandbox_proxy import AgentError, check_declared_length, open_agent_request
from ._state import Gateway

log = logging.getLogger("cove.gateway")
router = APIRouter(prefix="/api/v1")

START_SECONDS = 120.0
ISOLATED_RUNTIMES = ("crun", "runc")


@dataclasses.dataclass
class _Live:
    deployment_id: str
    workspace_id: str
    name: str
    created_at: float
    timeout: float
    idle_timeout: float
    last_active: float

    def expired(self, now: float) -> str | None:
        if now - self.created_at > self.timeout:
            return f"timeout of {self.timeout:g} s reached"
        if now - self.last_active > self.idle_timeout:
            return f"idle for {self.idle_timeout:g} s"
        return None


class _Registry:
    """The sandboxes this gateway runs, and the loop that ends expired ones."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.live: dict[str, _Live] = {}  # by deployment id
        self._task: asyncio.Task[None] | None = None

    def add(self, item: _Live) -> None:
        self.live[item.deployment_id] = item
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._expire_forever(), name="cove-sandbox-expiry")

    async def _expire_forever(self) -> None:
        while self.live:
            await asyncio.sleep(0.5)
            now = time.time()
            for item in list(self.live.values()):
                reason = item.expired(now)
                if reason:
                    with contextlib.suppress(Exception):
                        await self.terminate(item.workspace_id, item.name, reason)

    async def terminate(self, workspace_id: str, name: str, reason: str) -> list[int]:
        who = Principal(token_id="sandbox-expiry", workspace_id=workspace_id, workspace_name="", role="admin")
        rows = await self.gw.store.stop_deployment(who, name)
        for row in rows:
            self.live.pop(row.id, None)
        self.gw.scheduler.stop_deployment([r.id for r in rows], reason=f"sandbox ended: {reason}")
        self.gw.deployments.invalidate()
        return [r.version for r in rows]


_REGISTRIES: dict[int, _Registry] = {}


def _registry(gw: Gateway) -> _Registry:
    registry = _REGISTRIES.get(id(gw))
    if registry is None or registry.gw is not gw:
        registry = _REGISTRIES[id(gw)] = _Registry(gw)
    return registry


_DEFAULTS = defaults_for("sandbox")


class SandboxRequest(RequestBody):
    image_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    code_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    cpu: float | str = _DEFAULTS.cpu_millis / 1000
    memory: int | str = _DEFAULTS.memory_mib
    timeout: float = Field(default=_DEFAULTS.timeout, gt=0, le=7 * 24 * 3600)
    idle_timeout: float | None = Field(default=None, gt=0)
    network: bool = False
    volumes: list[list[str]] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)


def _view(gw: Gateway, row: Deployment) -> dict[str, Any]:
    live = _registry(gw).live.get(row.id)
    return {
        "id": row.name,
        "state": "running" if live else "terminated",
        "created_at": row.created_at,
        "timeout": live.timeout if live else None,
        "idle_timeout": live.idle_timeout if live else None,
        "last_active": live.last_active if live else None,
        "image_id": row.image_id,
        "cpu_millis": stored(row.config, row.kind, "cpu_millis"),
        "memory_mib": stored(row.config, row.kind, "memory_mib"),
    }


@router.post("/sandboxes", status_code=201, response_model=wire.SandboxView)
async def create_sandbox(body: SandboxRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    if body.network:
        raise ApiError(422, "network=True is not supported yet: sandboxes have only a loopback interface")
    if not any(w.state == "ready" and w.runtime in ISOLATED_RUNTIMES for w in gw.scheduler.workers.values()):
        raise ApiError(503, "sandboxes need a worker with an isolated engine (crun or runc); none is connected")
    try:
        config = DeploymentConfig(
            kind="sandbox",
            cpu_millis=parse_cpu(body.cpu),
            memory_mib=parse_memory(body.memory),
            timeout=body.timeout,  # kept warm, one container, 64 requests at once: the kind's defaults
            secrets=body.secrets,
            volumes=[tuple(pair) for pair in body.volumes],
        )
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    image = await gw.store.get_image(body.image_id)
    if image is None or image.status != "ready" or not await may_see_image(gw, who, body.image_id):
        raise ApiError(422, f"image {body.image_id} is not built")
    if not await gw.store.has_code(who.workspace_id, body.code_hash):
        raise ApiError(422, f"code {body.code_hash} is not uploaded")
    await check_references(gw, who, config)
    row, _ = await gw.store.create_deployment(
        who,
        name=new_id("sb"),
        app="sandboxes",
        kind="sandbox",
        module="sandbox",
        function="agent",
        image_id=body.image_id,
        code_hash=body.code_hash,
        config=config.to_dict(),
        ephemeral=True,
    )
    now = time.time()
    registry = _registry(gw)
    registry.add(_Live(row.id, who.workspace_id, row.name, now, body.timeout, body.idle_timeout or body.timeout, now))
    try:
        lease = await asyncio.wait_for(gw.scheduler.acquire(row), START_SECONDS)
    except (StartFailed, TimeoutError) as exc:
        await registry.terminate(who.workspace_id, row.name, "it could not start")
        raise ApiError(503, f"the sandbox could not start: {exc}") from None
    gw.scheduler.release(lease, served=False)
    return _view(gw, row)


@router.get("/sandboxes", response_model=list[wire.SandboxView])
async def list_sandboxes(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    rows = await gw.store.list_deployments(who.workspace_id)
    return [_view(gw, r) for r in rows if r.kind == "sandbox" and r.id in _registry(gw).live]


async def _sandbox(gw: Gateway, who: Principal, sandbox_id: str) -> Deployment:
    try:
        row = await gw.store.get_deployment(who.workspace_id, sandbox_id)
    except NotFound:
        raise ApiError(404, f"sandbox {sandbox_id!r} does not exist or has ended") from None
    if row.kind != "sandbox":
        raise ApiError(404, f"sandbox {sandbox_id!r} does not exist or has ended")
    if row.id not in _registry(gw).live:  # from before a gateway restart: its container is gone
        await _registry(gw).terminate(who.workspace_id, row.name, "the gateway restarted")
        raise ApiError(404, f"sandbox {sandbox_id!r} has ended")
    return row


@router.get("/sandboxes/{sandbox_id}", response_model=wire.SandboxView)
async def get_sandbox(sandbox_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return _view(gw, await _sandbox(gw, who, sandbox_id))


@router.delete("/sandboxes/{sandbox_id}", response_model=wire.SandboxTerminated)
async def terminate_sandbox(sandbox_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    row = await _sandbox(gw, who, sandbox_id)
    await _registry(gw).terminate(who.workspace_id, row.name, "terminated by user")
    return {"id": sandbox_id, "terminated": True}


def touch_reported(gw: Gateway, containers: Iterable[str]) -> None:
    """Sandboxes whose container another gateway relayed to since its last demand report were active just now."""
    live = _registry(gw).live
    used = set(containers)
    if not live or not used:
        return
    now = time.time()
    for pool in gw.scheduler.pools.values():
        item = live.get(pool.deployment.id)
        if item is not None and not used.isdisjoint(pool.slots):
            item.last_active = now


# The agent's answers, relayed unchanged (its errors have the gateway's shape), one operation per method.
_AGENT_PATH = "/sandboxes/{sandbox_id}/{rest:path}"
_AGENT_DOWN: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The sandbox's agent did not answer"}
}


@router.get(
    _AGENT_PATH,
    responses={
        200: {
            "model": wire.SandboxHealth | wire.SandboxExit | list[wire.FileEntry],
            "description": "health, exec/{id}/wait or fs/list; fs/read and exec/{id}/stdout|stderr answer bytes",
            "content": {"application/octet-stream": {"schema": wire.BINARY_SCHEMA}},
            "headers": {
                "X-Cove-Next": {"description": "Output: the offset to read from next", "schema": {"type": "string"}},
                "X-Cove-Eof": {"description": "Output: 1 once the stream has ended", "schema": {"type": "string"}},
            },
        },
        **_AGENT_DOWN,
    },
)
@router.post(
    _AGENT_PATH,
    responses={
        200: {"model": wire.SandboxProcess | wire.SandboxKilled, "description": "exec or exec/{id}/kill"},
        **_AGENT_DOWN,
    },
)
@router.put(_AGENT_PATH, responses={200: {"model": wire.SandboxFileWritten, "description": "fs/write"}, **_AGENT_DOWN})
@router.delete(
    _AGENT_PATH, responses={200: {"model": wire.SandboxFileRemoved, "description": "fs/remove"}, **_AGENT_DOWN}
)
async def relay(sandbox_id: str, rest: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> Response:
    if not gw.cluster.leading:
        return await relay_from_follower(gw, who, sandbox_id, rest, request)
    row = await _sandbox(gw, who, sandbox_id)
    live = _registry(gw).live[row.id]
    limit = gw.settings.max_body_bytes
    length = check_declared_length(request.headers, limit)
    live.last_active = time.time()
    try:
        lease = await asyncio.wait_for(gw.scheduler.acquire(row), START_SECONDS)
    except (StartFailed, TimeoutError) as exc:
        raise ApiError(503, f"the sandbox is not running: {exc}") from None

    def done() -> None:
        gw.scheduler.release(lease)
        live.last_active = time.time()

    query = request.url.query
    target = "/" + rest + (f"?{query}" if query else "")
    try:
        return await open_agent_request(
            lease.address,
            request.method,
            target,
            request.stream(),
            length=length,
            content_type=request.headers.get("content-type"),
            limit=limit,
            done=done,
        )
    except AgentError as exc:
        raise ApiError(502, str(exc)) from None
