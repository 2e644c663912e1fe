"""The control API under ``/api/v1``: images, code, deployments, containers, logs, tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from cove._host.python_envs import PythonEnvRefused, confine

from .._wire import api as wire
from .._wire.apps import check_app_names
from .._wire.config import DeploymentConfig
from .._wire.image_spec import image_id, validate_spec
from .._wire.kinds import DEPLOYABLE_KINDS
from .._wire.names import check_name
from .._wire.schedule import BadSchedule, check_schedule
from .._wire.urls import call_url
from ..exceptions import ConfigError, Conflict, NotFound
from ..images import ArchiveError, BuildError, image_roots, validate_archive
from ..scheduler import CallbackRefused
from ..store import Deployment, Principal, get_split, is_container_token, share_of, splits_of
from ._body import RequestBody
from ._capacity import check_capacity
from ._deployed_audit import check_deploy
from ._deps import AdminDep, GatewayDep, PrincipalDep, WorkerDep, read_limited
from ._errors import ApiError
from ._models import check_models
from ._patterns import Sha256, Version
from ._quotas_api import check_deploy_quota, check_disk_quota
from ._references import check_references
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

_HASH = re.compile(r"[0-9a-f]{64}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _check_hash(value: str) -> str:
    if not _HASH.fullmatch(value):
        raise ApiError(400, f"{value!r} is not a sha256 hex digest")
    return value


# -- images -------------------------------------------------------------------------


class ImageRequest(RequestBody):
    spec: dict[str, Any]


@router.post(
    "/images",
    summary="Build an image (NDJSON stream of build log lines, then a result)",
    response_class=StreamingResponse,
    responses={200: wire.ndjson(wire.BuildEvent, "Build log lines as they come, then one done or error event")},
)
async def build_image(body: ImageRequest, gw: GatewayDep, who: PrincipalDep) -> StreamingResponse:
    try:
        spec = validate_spec(body.spec)
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    if gw.settings.index_url:
        for requirement in spec["python_packages"]:
            if "://" in requirement or "@" in requirement.split(";")[0]:
                raise ApiError(
                    422,
                    f"requirement {requirement!r} points outside the package reservoir "
                    f"({gw.settings.index_url}), the only source builds may use here",
                )
    if spec.get("python_env"):
        # An existing environment is a folder of the workers' machines mounted into containers: the operator's call.
        if who.role != "admin":
            raise ApiError(403, "an image from an existing environment (python_env) needs an admin token")
        try:
            confine(spec["python_env"], gw.settings.python_env_roots)
        except PythonEnvRefused as exc:
            raise ApiError(422, str(exc)) from None
    iid = image_id(spec)
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    async def log(line: str) -> None:
        lines.put_nowait(line)

    async def build() -> dict[str, Any]:
        try:
            await gw.store.put_image(iid, spec, status="building")
            await gw.store.add_image_user(iid, who.workspace_id)
            built = await gw.builder.build(spec, log)
            await gw.store.put_image(
                iid,
                spec,
                status="ready",
                path=str(built.path),
                python=str(built.python),
                error=None,
                built_at=time.time(),
            )
            return {"event": "done", "image_id": iid, "python_version": built.python_version}
        except BuildError as exc:
            await gw.store.put_image(iid, spec, status="failed", error=str(exc))
            return {"event": "error", "image_id": iid, "message": str(exc)}
        finally:
            lines.put_nowait(None)

    # The build goes on if the client goes away: another deploy may be waiting for it.
    task = asyncio.create_task(build())

    async def stream() -> AsyncIterator[bytes]:
        while (line := await lines.get()) is not None:
            yield (json.dumps({"event": "log", "line": line}) + "\n").encode()
        yield (json.dumps(await task) + "\n").encode()

    return StreamingResponse(stream(), media_type="application/x-ndjson")


async def may_see_image(gw: Gateway, who: Principal, image_id: str) -> bool:
    """Workers and admins see every image; a workspace only those it asked to build.

    An image is shared by every workspace with the same spec, but the spec
    (its ``env_vars`` above all) belongs to the workspaces that wrote it.
    """
    return who.role in ("admin", "worker") or await gw.store.image_used_by(image_id, who.workspace_id)


@router.get("/images/{image_id}", response_model=wire.ImageView, response_model_exclude_unset=True)
async def get_image(image_id: Sha256, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    row = await gw.store.get_image(_check_hash(image_id))
    if row is None or not await may_see_image(gw, who, image_id):
        raise ApiError(404, f"image {image_id} is not known")
    return {
        "id": row.id,
        "status": row.status,
        "path": row.path,
        "python": row.python,
        "error": row.error,
        "spec": row.spec,
        # Images with system layers run on their own root: the Debian base and layers over it.
        **image_roots(row.path),
    }


# -- code ------------------------------------------------------------------------------


@router.head(
    "/code/{code_hash}",
    response_class=Response,
    summary="200 when this workspace uploaded the archive, else 404",
    responses={200: wire.no_body("This workspace uploaded the archive")},
)
async def has_code(code_hash: Sha256, gw: GatewayDep, who: PrincipalDep) -> Response:
    """Per workspace: another workspace's upload of the same bytes answers 404, so the client
    uploads them itself, proving it holds the code (the blob is stored only once)."""
    if not await gw.store.has_code(who.workspace_id, _check_hash(code_hash)):
        raise ApiError(404, f"code {code_hash} is not uploaded")  # the usual error headers; HEAD drops the body
    return Response(status_code=200)


@router.put("/code/{code_hash}", status_code=201, response_model=wire.CodeStored)
async def upload_code(code_hash: Sha256, request: Request, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    _check_hash(code_hash)
    data = await read_limited(request, gw.settings.max_code_bytes, "code archive")
    size = len(data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != code_hash:
        raise ApiError(400, f"code archive hashes to {actual}, not {code_hash}")
    try:
        await asyncio.to_thread(validate_archive, data)
    except ArchiveError as exc:
        raise ApiError(400, f"code archive rejected: {exc}") from None
    await check_disk_quota(gw, who, "code", size)
    target = gw.settings.home.code_blobs / f"{code_hash}.tar.gz"
    if not target.exists():
        tmp = target.with_suffix(f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
        await asyncio.to_thread(tmp.write_bytes, data)
        os.replace(tmp, target)
    await gw.store.add_code(code_hash, size, who, data=data if gw.content.keeps_in_database(size) else None)
    return {"hash": code_hash, "size": size}


@router.get(
    "/code/{code_hash}",
    response_class=Response,
    responses={200: wire.binary("application/gzip", "The code archive (tar.gz)")},
)
async def download_code(code_hash: Sha256, gw: GatewayDep, who: WorkerDep) -> Response:
    """Workers fetch the code of the containers they run; tenants never read archives back."""
    path = await gw.content.code(_check_hash(code_hash))  # uploaded through another gateway, maybe
    if path is None:
        raise ApiError(404, f"code {code_hash} is not stored")
    return Response(await asyncio.to_thread(path.read_bytes), media_type="application/gzip")


# -- deployments --------------------------------------------------------------------------


class DeployRequest(RequestBody):
    name: str
    app: str = Field(default="default", max_length=100)
    kind: str = "endpoint"
    module: str = Field(max_length=255)
    function: str = Field(max_length=255)
    image_id: str
    code_hash: str
    config: dict[str, Any] = Field(default_factory=dict)
    ephemeral: bool = False
    force: bool = Field(
        default=False,
        description="Accept it even when no registered worker could ever hold one container (capacity is coming);"
        " the answer's warnings say so and calls fail at once (503) until such a worker joins.",
    )
    replace: bool = Field(
        default=False,
        description="Take the name over when its live version belongs to another app (else 409 names that app).",
    )
    source: str | None = Field(default=None, max_length=4096, description="Where the app is deployed from (a path).")
    app_names: dict[str, str] = Field(
        default_factory=dict,
        description="The names the app's functions run under where not their own (a script's run deploys f as"
        " f--RUN); its containers call them by these.",
    )


def deployment_view(gw: Gateway, row: Deployment, *, traffic: int) -> dict[str, Any]:
    """A deployment version as the API shows it, with the percentage of the name's calls it takes."""
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "kind": row.kind,
        "state": row.state,
        "module": row.module,
        "function": row.function,
        "image_id": row.image_id,
        "code_hash": row.code_hash,
        "config": row.config,
        "ephemeral": row.ephemeral,
        "created_at": row.created_at,
        "url": call_url(gw.settings.public_url, row.kind, row.name),
        "version_url": call_url(gw.settings.public_url, row.kind, row.name, row.version),
        "pending_reason": gw.scheduler.pending_reason(row.id),
        "parameter_sets": gw.scheduler.parameter_sets(row.id),
        "live": traffic > 0,
        "traffic_percent": traffic,
        "callback_secret": (
            gw.scheduler.dispatcher.callbacks.secret_for(row.workspace_id, row.name)
            if row.config.get("callback_url")
            else None
        ),
    }


@router.post(
    "/deployments",
    status_code=201,
    response_model=wire.DeploymentCreated,
    responses={200: {"model": wire.DeploymentCreated, "description": "The same deployment existed already"}},
)
async def deploy(body: DeployRequest, gw: GatewayDep, who: PrincipalDep, response: Response) -> dict[str, Any]:
    try:
        check_name("deployment", body.name)
        app_names = check_app_names(body.app_names)
        config = DeploymentConfig.from_dict({**body.config, "kind": body.kind})
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    if body.kind not in DEPLOYABLE_KINDS:
        raise ApiError(422, f"kind {body.kind!r} is not supported by this server")
    if config.schedule is not None:
        try:
            check_schedule(*config.schedule)
        except BadSchedule as exc:
            raise ApiError(422, str(exc)) from None
    for field, value in (("module", body.module), ("function", body.function)):
        if not _IDENT.fullmatch(value):
            raise ApiError(422, f"{field} {value!r} is not a Python dotted name")
    await _check_image_and_code(gw, who, body.image_id, body.code_hash)
    await check_deploy(gw, body.image_id)  # the reservoir's [deploy] policy: images with severe advisories
    await check_callback_target(gw, config.callback_url)
    await check_references(gw, who, config)
    warnings = check_capacity(gw, config, force=body.force)
    warnings += await check_models(gw.settings, config)
    await check_deploy_quota(gw, who, config)
    try:
        row, created = await gw.store.create_deployment(
            who,
            name=body.name,
            app=body.app,
            kind=body.kind,
            module=body.module,
            function=body.function,
            image_id=body.image_id,
            code_hash=body.code_hash,
            config=config.to_dict(),
            ephemeral=body.ephemeral,
            replace=body.replace,
            source=body.source,
            app_names=app_names,
        )
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    gw.deployments.invalidate()
    if created:
        gw.scheduler.keep_warm(row)
    else:
        response.status_code = 200
    if created and row.version > 1 and body.ephemeral:
        await _retire_older(gw, who, row)
    view = deployment_view(gw, row, traffic=await traffic_share(gw, who, row))
    return {**view, "created": created, "warnings": warnings}


async def _check_image_and_code(gw: Gateway, who: Principal, image_id: str, code_hash: str) -> None:
    """The image and the code must be this workspace's own: built (or asked for) and uploaded by it.

    Another workspace's image or code answers as if it did not exist, so a
    hash learnt elsewhere neither runs nor reveals anything.
    """
    image = await gw.store.get_image(_check_hash(image_id))
    if image is None or image.status != "ready" or not await may_see_image(gw, who, image_id):
        raise ApiError(422, f"image {image_id} is not built; build it with POST /api/v1/images first")
    if not await gw.store.has_code(who.workspace_id, _check_hash(code_hash)):
        raise ApiError(422, f"code {code_hash} is not uploaded; PUT /api/v1/code/{{hash}} first")


async def check_callback_target(gw: Gateway, url: str | None) -> None:
    """Refuse a ``callback_url`` whose host is (or resolves to) an address the operator did not allow."""
    if url is None:
        return
    try:
        await gw.scheduler.dispatcher.callbacks.policy.check_url(url)
    except CallbackRefused as exc:
        raise ApiError(422, f"callback_url {url!r} is refused: {exc}") from None


async def _retire_older(gw: Gateway, who: Principal, current: Deployment) -> None:
    """``cove serve`` reloads: only the newest version of a temporary deployment keeps containers."""
    older = [
        d.id
        for d in await gw.store.list_deployments(who.workspace_id)
        if d.name == current.name and d.version < current.version
    ]
    gw.scheduler.stop_deployment(older, reason=f"replaced by v{current.version}")


@router.get("/deployments", response_model=list[wire.DeploymentView])
async def list_deployments(
    gw: GatewayDep, who: PrincipalDep, all: Annotated[bool, Query()] = False
) -> list[dict[str, Any]]:
    rows = await gw.store.list_deployments(who.workspace_id, include_stopped=all)
    newest: dict[str, int] = {}
    for r in rows:
        if r.state == "active":
            newest[r.name] = max(newest.get(r.name, 0), r.version)
    splits = await splits_of(gw.store, who.workspace_id)
    return [
        deployment_view(gw, r, traffic=share_of(r.version, newest.get(r.name), splits.get(r.name)))
        for r in rows
        if r.state != "deleted"
    ]


@router.get("/deployments/{name}", response_model=wire.DeploymentView)
async def get_deployment(name: str, gw: GatewayDep, who: PrincipalDep, version: Version = None) -> dict[str, Any]:
    try:
        row = await gw.store.get_deployment(who.workspace_id, name, version)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    return deployment_view(gw, row, traffic=await traffic_share(gw, who, row))


async def traffic_share(gw: Gateway, who: Principal, row: Deployment) -> int:
    """The percentage of its name's calls ``row`` takes now: by the split if there is one, else newest-takes-all."""
    split = await get_split(gw.store, who.workspace_id, row.name)
    if split or row.state != "active":
        return share_of(row.version, None, split)
    newest = await gw.store.get_deployment(who.workspace_id, row.name)
    return share_of(row.version, newest.version, None)


async def copied_version_view(
    gw: Gateway, who: Principal, row: Deployment, created: bool, warnings: list[str], source_version: int
) -> dict[str, Any]:
    """The answer once a version was made from an earlier one (a rollback, new scale limits): it is live now, so the
    routing cache forgets the old, a new one is kept warm, and the caller learns which version it copied."""
    gw.deployments.invalidate()
    if created:
        gw.scheduler.keep_warm(row)
    view = deployment_view(gw, row, traffic=await traffic_share(gw, who, row))
    return {**view, "created": created, "warnings": warnings, "source_version": source_version}


async def _stop(gw: Gateway, who: Principal, name: str, delete: bool) -> dict[str, Any]:
    try:
        rows = await gw.store.stop_deployment(who, name, delete=delete)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    gw.scheduler.stop_deployment([r.id for r in rows])
    gw.deployments.invalidate()
    return {"name": name, "stopped_versions": [r.version for r in rows]}


@router.post("/deployments/{name}/stop", response_model=wire.DeploymentStopped)
async def stop_deployment(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return await _stop(gw, who, name, delete=False)


@router.delete("/deployments/{name}", response_model=wire.DeploymentStopped)
async def delete_deployment(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    return await _stop(gw, who, name, delete=True)


# -- containers and logs -------------------------------------------------------------------


@router.get("/containers", response_model=list[wire.ContainerView], response_model_exclude_unset=True)
async def list_containers(
    gw: GatewayDep, who: PrincipalDep, all: Annotated[bool, Query()] = False
) -> list[dict[str, Any]]:
    rows = await gw.store.list_containers(who.workspace_id, active_only=not all)
    deployments = {d.id: d for d in await gw.store.list_deployments(who.workspace_id, include_stopped=True)}
    out = []
    for row in rows:
        dep = deployments.get(row.deployment_id)
        live = gw.scheduler.container_view(row.id) or {}
        out.append(
            {
                "id": row.id,
                "deployment": dep.name if dep else None,
                "version": dep.version if dep else None,
                "state": row.state,
                "worker_id": row.worker_id,
                "address": row.address,
                "created_at": row.created_at,
                "ready_at": row.ready_at,
                "stopped_at": row.stopped_at,
                "exit_code": row.exit_code,
                "reason": row.reason,
                "timings": row.timings,
                **live,
            }
        )
    out.extend(_backlog(gw, who.workspace_id))
    return out


def _backlog(gw: Gateway, workspace_id: str) -> list[dict[str, Any]]:
    """Containers wanted but not placeable now (no room, no GPU of the type...): one row per deployment."""
    rows: list[dict[str, Any]] = []
    for pool in list(gw.scheduler.pools.values()):
        dep = pool.deployment
        if dep.workspace_id != workspace_id or not pool.pending_reason:
            continue
        rows.append(
            {
                "id": None,
                "deployment": dep.name,
                "version": dep.version,
                "state": "waiting",
                "worker_id": None,
                "address": None,
                "created_at": None,
                "ready_at": None,
                "stopped_at": None,
                "exit_code": None,
                "reason": pool.pending_reason,
                "timings": {},
                **({"parameters": dict(pool.parameters)} if pool.parameters else {}),
            }
        )
    return rows


@router.post("/containers/{container_id}/stop", response_model=wire.ContainerStopping)
async def stop_container(container_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    row = await gw.store.get_container(container_id)
    if row is None or row.workspace_id != who.workspace_id:
        raise ApiError(404, f"container {container_id!r} does not exist")
    stopping = gw.scheduler.stop_container(container_id, reason="stopped by user")
    return {"id": container_id, "stopping": stopping}


@router.get(
    "/logs",
    summary="Logs of a deployment or a container (NDJSON; follow streams new lines)",
    response_class=StreamingResponse,
    responses={200: wire.ndjson(wire.LogRecord, "Log lines, oldest first; a follow sends empty lines while idle")},
)
async def logs(
    gw: GatewayDep,
    who: PrincipalDep,
    target: str,
    follow: bool = False,
    tail: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> StreamingResponse:
    container = await gw.store.get_container(target)
    if container is not None and container.workspace_id == who.workspace_id:
        ids = [container.id]
        dep_key = None
        follow_ids: set[str] | None = {container.id}
    else:
        deps = [d for d in await gw.store.list_deployments(who.workspace_id, include_stopped=True) if d.name == target]
        if not deps:
            raise ApiError(404, f"no deployment or container named {target!r}")
        rows = await gw.store.list_containers(who.workspace_id, active_only=False, deployment_ids=[d.id for d in deps])
        ids = [r.id for r in rows]
        dep_key = f"{who.workspace_id}/{target}"
        follow_ids = None

    async def stream() -> AsyncIterator[bytes]:
        if not follow:
            for record in gw.logs.read(ids, tail):
                yield (json.dumps(record) + "\n").encode()
            return
        async with gw.logs.follow(follow_ids, dep_key) as queue:
            for record in gw.logs.read(ids, tail):
                yield (json.dumps(record) + "\n").encode()
            while True:
                try:
                    new = await asyncio.wait_for(queue.get(), 15)
                    if new is None:  # the server stops: the stream ends, the client sees its end
                        return
                    yield (json.dumps(new) + "\n").encode()
                except TimeoutError:
                    yield b"\n"  # keeps idle connections alive and notices gone clients

    return StreamingResponse(stream(), media_type="application/x-ndjson")


# -- tokens, workspaces, audit ------------------------------------------------------------


class TokenRequest(RequestBody):
    name: str = Field(default="token", min_length=1, max_length=100)
    workspace: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    role: str = Field(default="user", pattern=r"^(user|admin|worker|metrics)$")


async def _refuse_container_token(gw: Gateway, who: Principal) -> None:
    """Code in a container calls its workspace's functions; it never makes or revokes tokens."""
    if who.role != "admin" and await is_container_token(gw.store, who.token_id):
        raise ApiError(403, "a container's token cannot make or revoke tokens")


@router.post("/tokens", status_code=201, response_model=wire.TokenCreated)
async def create_token(body: TokenRequest, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    await _refuse_container_token(gw, who)
    workspace = body.workspace or who.workspace_name
    if (workspace != who.workspace_name or body.role in ("admin", "worker", "metrics")) and who.role != "admin":
        raise ApiError(403, "only an admin token can make tokens for other workspaces, admin, worker or metrics tokens")
    if workspace != who.workspace_name:
        await gw.store.ensure_workspace(workspace, who)
    row, secret = await gw.store.create_token(workspace, body.name, body.role, who)
    return {"id": row.id, "name": row.name, "workspace": workspace, "role": row.role, "token": secret}


@router.get("/tokens", response_model=list[wire.TokenView])
async def list_tokens(gw: GatewayDep, who: PrincipalDep) -> list[dict[str, Any]]:
    rows = await gw.store.list_tokens(who.workspace_id)
    return [
        {"id": r.id, "name": r.name, "role": r.role, "created_at": r.created_at, "revoked_at": r.revoked_at}
        for r in rows
    ]


@router.delete("/tokens/{token_id}", response_model=wire.TokenRevoked)
async def revoke_token(token_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    await _refuse_container_token(gw, who)
    try:
        await gw.store.revoke_token(who, token_id)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    gw.auth.forget()
    return {"id": token_id, "revoked": True}


@router.get("/whoami", response_model=wire.Whoami)
async def whoami(who: PrincipalDep) -> dict[str, Any]:
    return {"token_id": who.token_id, "workspace": who.workspace_name, "role": who.role}


@router.get("/audit", response_model=list[wire.AuditEntry])
async def audit(
    gw: GatewayDep, who: AdminDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[dict[str, Any]]:
    rows = await gw.store.audit_log(who.workspace_id, limit)
    return [
        {"id": r.id, "ts": r.ts, "action": r.action, "target": r.target, "token_id": r.token_id, "details": r.details}
        for r in rows
    ]
