"""The gateway's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, dashboard
from .._wire import api as wire
from ..cluster import Cluster, ClusterSettings, forwarded_route, served_by_follower
from ..images import ImageBuilder
from ..k8s import PoolCollector
from ..k8s import start_if_configured as start_pool_controller
from ..scheduler import CallbackPolicy, Scheduler
from ..store import Store
from . import (
    _api_docs,
    _apps_api,
    _blobs_api,
    _changes_api,
    _control,
    _events_api,
    _functions_api,
    _gpus_api,
    _history_api,
    _image_audit_api,
    _images_api,
    _invoke_api,
    _maps_api,
    _metrics_api,
    _output_api,
    _peer_api,
    _quotas_api,
    _reservoir_api,
    _retry_api,
    _rollouts_api,
    _sandbox_api,
    _scaling_api,
    _schedules_api,
    _secrets_api,
    _sessions_api,
    _stream_calls,
    _traces_api,
    _user_metrics_api,
    _volumes_api,
    _waiting,
    _workers_api,
)
from . import _calls_fast as calls_fast
from ._asgi_relay import web_apps_in_front
from ._auth import Authenticator
from ._change_feed import ChangeFeed
from ._container_tokens import revoke_stale as revoke_stale_container_tokens
from ._content import Content
from ._error_responses import ERROR_RESPONSES
from ._errors import ApiError
from ._express import ExpressLane
from ._follower_loops import FollowerLoops
from ._follower_slots import FollowerSlots
from ._invoke import EXPRESS_ENDPOINT, PREFIX, SERVE_ENDPOINT, Exchange, handle_invoke, serve_endpoint
from ._local_reservoir import LocalReservoir
from ._logs import LogHub
from ._request_ids import with_request_ids
from ._secretbox import SecretBox, load_key, peer_token
from ._settings import GatewaySettings
from ._state import DeploymentCache, Gateway, Metrics
from ._tracing import start_tracing
from ._upstream import UpstreamPool

log = logging.getLogger("cove.gateway")
RESERVOIR = "/reservoir"


def _error(
    status: int, message: str, type_: str, headers: dict[str, str] | None = None, fields: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"type": type_, "message": message, **(fields or {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


# The control API's routers in the order the OpenAPI document lists them, each with its tag.
_ROUTERS = (
    (_control, "control"),
    (_rollouts_api, "control"),
    (_scaling_api, "control"),
    (_apps_api, "control"),
    (_workers_api, "workers"),
    (_functions_api, "functions"),
    (_maps_api, "functions"),
    (_retry_api, "functions"),
    (_stream_calls, "functions"),
    (_schedules_api, "schedules"),
    (_secrets_api, "secrets"),
    (_volumes_api, "volumes"),
    (_sandbox_api, "sandboxes"),
    (_images_api, "images"),
    (_image_audit_api, "images"),
    (_quotas_api, "quotas"),
    (_reservoir_api, "reservoir"),
    (_blobs_api, "blobs"),
    (_gpus_api, "gpus"),
    (_output_api, "functions"),
    (_events_api, "ops"),
    (_changes_api, "ops"),
    (_history_api, "ops"),
    (_waiting, "ops"),
    (_user_metrics_api, "ops"),
    (_traces_api, "ops"),
    (_metrics_api, "ops"),
    (_api_docs, "ops"),  # the documentation pages and their scripts: not in the document they render
    (_invoke_api, "endpoints"),
    (_sessions_api, "dashboard"),  # the dashboard's sign-in (not in the document); its pages call the routes above
    (dashboard, "dashboard"),  # GET / and the dashboard's files
)


def _for_the_leader(gw: Gateway, scope: dict[str, Any]) -> bool:
    """Whether this gateway hands the request to the leader (it does not lead, and cannot answer it itself).

    The leader counts the requests that reach it that way: a follower serves warm invocations itself.
    """
    gw.count_if_forwarded(scope, forwarded_route(scope["path"]))
    return not gw.cluster.leading and not served_by_follower(scope)


def _register_collectors(registry: CollectorRegistry, scheduler: Scheduler) -> None:
    """Gauges read from the scheduler at scrape time: GPUs, and the Kubernetes pool controller's pools (samples
    only on the leader that runs it)."""
    registry.register(_gpus_api.GpuCollector(scheduler))
    registry.register(PoolCollector(lambda: scheduler.pool_states()))


def create_app(settings: GatewaySettings) -> Any:
    """Build the gateway: the invocation fast path in front of the FastAPI control API."""
    lane = ExpressLane(settings.access_log)  # serves warm invocations while the gateway runs

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.home.ensure()
        store = Store(settings.database_url)
        await store.migrate()
        cluster = Cluster(store, ClusterSettings.for_gateway(settings.public_url))
        secret_key = load_key(settings.home.root)
        upstream = UpstreamPool()
        scheduler = Scheduler(
            store,
            upstream.call,
            on_container_gone=upstream.forget,
            owner=cluster.gateway_id,
            events_retention=settings.events_retention,
        )
        leader_tasks: list[asyncio.Task[None]] = []

        async def lead() -> None:
            """Start the scheduler: at once on SQLite, when this gateway wins the lease on PostgreSQL."""
            orphaned = await store.fail_orphaned_containers("the gateway restarted")
            if orphaned:
                log.info("marked %d containers of the previous run as exited", orphaned)
            await revoke_stale_container_tokens(store)
            await scheduler.start()
            # Scripts' ephemeral apps whose client went away without a word (SIGKILL, a lost laptop).
            leader_tasks.append(asyncio.create_task(_apps_api.reap_forever(gw), name="cove-app-reaper"))
            # On Kubernetes (the Helm chart sets COVE_K8S_CONFIG): worker pods follow the backlog.
            controller = start_pool_controller(scheduler, store)
            if controller is not None:
                leader_tasks.append(controller)

        gw = Gateway(
            settings=settings,
            store=store,
            scheduler=scheduler,
            auth=Authenticator(store, settings.token_cache_seconds),
            upstream=upstream,
            logs=LogHub(settings.home.container_logs),
            builder=ImageBuilder(
                settings.home, index_url=settings.index_url, python_env_roots=settings.python_env_roots
            ),
            deployments=DeploymentCache(store),
            metrics=Metrics(),
            secret_box=SecretBox(secret_key),
            cluster=cluster,
            content=Content(settings.home, store, cluster.presence, peer_token(secret_key)),
            follower=FollowerSlots(store, cluster.gateway_id, on_container_gone=upstream.forget),
            changes=ChangeFeed(),
            reservoir=LocalReservoir(settings.home.root / "reservoir"),
        )
        app.state.gateway = gw
        lane.gateway = gw
        scheduler.dispatcher.callbacks.configure(CallbackPolicy.parse(settings.callback_allow), secret_key)
        _register_collectors(gw.metrics.registry, scheduler)
        await cluster.start(lead, scheduler.dispatcher.adopt)
        follower_loops = FollowerLoops.start(store, cluster, gw.follower, peer_token(secret_key))
        try:
            yield
        finally:
            lane.gateway = None
            for task in leader_tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await follower_loops.close()
            await scheduler.close()
            await cluster.close()
            await gw.content.close()
            upstream.close()
            await store.close()

    api = FastAPI(
        title="Cove",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # _api_docs serves the documentation pages with their scripts (no CDN)
        redoc_url=None,
        openapi_url=_api_docs.OPENAPI_URL,
        responses=ERROR_RESPONSES,
    )
    for module, tag in _ROUTERS:
        api.include_router(module.router, tags=[tag])
    api.include_router(_peer_api.router)  # between the cluster's gateways only: not in the published API

    _answer_errors_in_one_shape(api)

    @api.get("/healthz", tags=["ops"], response_model=wire.Health)
    async def healthz() -> dict[str, Any]:
        gw: Gateway = api.state.gateway
        return {
            "status": "ok",
            "version": __version__,
            "workers": len(gw.scheduler.workers),
            "leader": gw.cluster.leading,
        }

    reservoir: list[Any] = []

    def reservoir_app() -> Any:
        """The package reservoir of this Cove home, served under /reservoir/ (opened on first use)."""
        if not reservoir:
            from ..reservoir import create_app as create_reservoir

            reservoir.append(create_reservoir(settings.home.root / "reservoir"))
        return reservoir[0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if _for_the_leader(api.state.gateway, scope):
                await api.state.gateway.cluster.forward(scope, receive, send)  # its live scheduler answers it
                return
            path = scope["path"]
            if path.startswith(PREFIX):
                await handle_invoke(api.state.gateway, scope, receive, send)
                return
            if calls_fast.handles(scope):
                await calls_fast.handle_call(api.state.gateway, scope, receive, send)
                return
            if _stream_calls.handles(scope):
                await _stream_calls.handle_stream(api.state.gateway, scope, receive, send)
                return
            if path == RESERVOIR or path.startswith(RESERVOIR + "/"):
                inner = {
                    **scope,
                    "root_path": scope.get("root_path", "") + RESERVOIR,
                    "path": path[len(RESERVOIR) :] or "/",
                }
                await reservoir_app()(inner, receive, send)
                return
        await api(scope, receive, send)

    # /asgi/: the web apps' HTTP and WebSockets; every request with its id (X-Request-Id)
    return _outermost(web_apps_in_front(app, api), settings, lane)


def _answer_errors_in_one_shape(api: FastAPI) -> None:
    """Every error the API answers, raised by Cove or by the framework, as the same JSON error body."""

    @api.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.type, exc.headers, exc.fields)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Errors the framework raises itself (an unparsable body, a method not allowed) in the usual shape."""
        error = ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
        return _error(error.status, error.message, error.type, error.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}"
            for err in exc.errors()
        )
        return _error(422, problems or "invalid request", "InvalidRequest")

    @api.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}", "InternalError")


def _outermost(app: Any, settings: GatewaySettings, lane: ExpressLane) -> Any:
    """``app`` with request ids on every request and, when ``COVE_OTLP_ENDPOINT`` is set, a span around it.

    The span is outside the request id, which is then the trace id (unless the client sent an ``X-Request-Id``).
    Without tracing, the result also carries ``serve_endpoint``: the server hands it the invocation path's
    requests outside the ASGI cycle (``cove.server._http_protocol``); it gives them ids and logs them the same.
    """
    with_ids = with_request_ids(app, settings.access_log)
    tracing = start_tracing(settings.otlp_endpoint)  # None: off, and nothing of OpenTelemetry loaded
    if tracing is not None:
        return tracing.wrap(with_ids)  # every request in a span: the invocation path through ASGI too
    api = getattr(app, "api", None)  # the FastAPI part, whose state holds the gateway once it started
    if api is None:
        return with_ids

    async def endpoint(exchange: Exchange) -> None:
        await serve_endpoint(api.state.gateway, exchange, settings.access_log)

    setattr(with_ids, SERVE_ENDPOINT, endpoint)  # the server runs the invocation path outside the ASGI cycle
    setattr(with_ids, EXPRESS_ENDPOINT, lane)  # ... offering each to the express lane first (warm calls)
    return with_ids
