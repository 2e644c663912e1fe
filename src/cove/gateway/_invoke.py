"""``POST /endpoint/{name}[/v{n}]``: the invocation hot path.

It authenticates from a cache, finds a container slot in memory and relays the
body to the container's socket over a kept-alive connection. No database write
and no framework routing happen per request. The server hands these requests
to :func:`serve_endpoint` outside the ASGI cycle (``cove.server._http_protocol``),
which writes a whole answer at once; with tracing on, they come through the
ASGI app to :func:`handle_invoke`, inside their spans. Both answer the same.

The leader takes slots from its scheduler; a gateway that does not lead takes
them from its mirror of the ready containers (``_follower_slots``), asking
the leader for containers when none is ready, and hands the request itself to
the leader only when it cannot serve it (a class with parameters, no leader).
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from .._wire.defaults import stored
from .._wire.urls import call_url, how_to_call
from ..exceptions import NotFound
from ..scheduler import DeploymentStopped, Lease, NoCapacity, Scheduler, StartFailed
from ..store import Deployment, random_hex
from ._capacity import NO_CAPACITY
from ._errors import ApiError
from ._follower_slots import FollowerSlots, ForwardToLeader
from ._inputs import check_inputs
from ._parameters import header_parameters
from ._request_ids import assign_request_id, log_access, request_id, sending_request_id
from ._state import Gateway
from ._streams import relay, stream_accept
from ._tracing import tracing_of
from ._upstream import UpstreamError, UpstreamStream
from ._waiting import waited_error, waiting_reason

if TYPE_CHECKING:
    from ._tracing_otel import Tracing

Scope = dict[str, Any]
PREFIX = "/endpoint/"
SERVE_ENDPOINT = "serve_endpoint"  # the app's attribute the server calls for PREFIX's POSTs (``cove.server``)
EXPRESS_ENDPOINT = "express_endpoint"  # the app's attribute the server offers them to first (``_express``)
_JSON_HEAD = b"content-type: application/json\r\n"  # an invocation's whole answer: JSON
_JSON_HEADERS = [(b"content-type", b"application/json")]
_KIND_NAMES = {"endpoint": "an endpoint", "asgi": "a web app"}


class Leases(Protocol):
    """Where a request gets its container slot: the leader's scheduler, or a follower's mirror of ready containers."""

    async def acquire(self, deployment: Deployment, parameters: dict[str, Any] | None = None) -> Lease: ...

    def release(self, lease: Lease, *, served: bool = True) -> None: ...

    def hold(self, container_id: str) -> Lease | None: ...


def _replay(body: bytes, receive: Any) -> Any:
    """``receive`` for a request whose body was read already: the body once, then the client's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Any:
        return pending.pop() if pending else await receive()

    return again


def parse_path(path: str) -> tuple[str, int | None]:
    parts = [p for p in path[len(PREFIX) :].split("/") if p]
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2 and parts[1].startswith("v") and parts[1][1:].isdigit():
        return parts[0], int(parts[1][1:])
    raise ApiError(404, f"no such endpoint path {path!r}; use /endpoint/NAME or /endpoint/NAME/vN")


async def read_body(receive: Any, limit: int, declared: int | None) -> bytes:
    if declared is not None and declared > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = _JSON_HEADERS + [(b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def find_deployment(
    gw: Gateway, authorization: bytes | None, name: str, version: int | None, kind: str
) -> tuple[str, Deployment]:
    """The caller's workspace and the deployment ``name`` of ``kind`` a call reaches (pinned to ``version``).

    A caller without a token reaches the default workspace's deployments that
    are not ``authorized``; one of another kind is a 404 that says where it answers.
    """
    try:
        if authorization is None:
            workspace_id, workspace = await gw.auth.workspace(gw.settings.default_workspace)
            deployment = await gw.deployments.get(workspace_id, name, version)
            if stored(deployment.config, deployment.kind, "authorized"):
                raise ApiError(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
        else:
            who = await gw.auth.principal(authorization.decode("latin-1"))
            workspace = who.workspace_name
            deployment = await gw.deployments.get(who.workspace_id, name, version)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    if deployment.kind != kind:
        where = call_url("", deployment.kind, name)
        raise ApiError(
            404,
            f"{name!r} is a {deployment.kind}, not {_KIND_NAMES.get(kind, kind)}: "
            + (f"it answers on {where}" if where else how_to_call(deployment.kind)),
        )
    return workspace, deployment


class _WaitingErrors:
    """``waiting_errors``'s context: a class, not a generator, as it wraps every relayed request."""

    __slots__ = ("deployment", "scheduler", "timeout")

    def __init__(self, scheduler: Scheduler, deployment: Deployment, timeout: float) -> None:
        self.scheduler = scheduler
        self.deployment = deployment
        self.timeout = timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        error = None if exc is None else self.error_for(exc)
        if error is not None:
            raise error from None

    def error_for(self, exc: BaseException) -> ApiError | None:
        """The caller's error for what ended the wait (a ``TimeoutError``, a refusal), or None: not one of those."""
        scheduler, deployment = self.scheduler, self.deployment
        if isinstance(exc, TimeoutError):
            waiting = waiting_reason(scheduler, deployment)
            detail = f" while waiting: {waiting}" if waiting else ""
            message = f"no response within the deployment's timeout of {self.timeout:g} s{detail}"
            return waited_error(504, message, waiting)
        if isinstance(exc, NoCapacity):  # the reason in the backlog's words, as cove events and cove ps say it
            return waited_error(503, str(exc), waiting_reason(scheduler, deployment) or str(exc), NO_CAPACITY)
        if isinstance(exc, StartFailed):
            return waited_error(503, str(exc), waiting_reason(scheduler, deployment) or str(exc))
        if isinstance(exc, DeploymentStopped):
            return ApiError(503, str(exc))
        return None


def waiting_errors(scheduler: Scheduler, deployment: Deployment, timeout: float) -> _WaitingErrors:
    """The caller's error when no container answered: past the ``timeout`` (504) or none could start (503)."""
    return _WaitingErrors(scheduler, deployment, timeout)


async def container_failure(lease: Lease, exc: UpstreamError) -> ApiError:
    """The error for a container that broke a call off: 502, or 503 when it never served one (it failed to start)."""
    reason = await lease.slot.exit_reason()
    if reason is None:
        return ApiError(502, f"container {lease.container_id} failed: {exc}")
    started_ok = lease.slot.served > 0
    return ApiError(502 if started_ok else 503, f"container {lease.container_id} exited: {reason}")


async def failure_error(
    slots: Leases, follower: FollowerSlots | None, lease: Lease, exc: UpstreamError
) -> ApiError | None:
    """After the relay to the container failed, the lease given back: the caller's error, or None when a
    follower's request never reached the container and the leader may take it."""
    slots.release(lease, served=False)
    if follower is not None and await follower.never_reached(lease, exc):
        return None
    return await container_failure(lease, exc)


Answer = tuple[int, "bytes | Streaming | ForwardToLeader", list[tuple[bytes, bytes]]]


def error_answer(exc: ApiError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """An error as an invocation's answer: its status, its JSON body and its own headers."""
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers.items()]
    return exc.status, exc.body(), extra


class Exchange(Protocol):
    """A request served outside the ASGI cycle (``cove.server``'s ``DirectExchange``): scope, body, one-write answer."""

    scope: Scope
    receive: Any
    send: Any

    async def answer(self, status: int, headers: bytes, body: bytes) -> None: ...


async def _answer(gw: Gateway, scope: Scope, receive: Any) -> Answer:
    """The invocation's status, answer and extra headers, counted in the metrics; or the leader must answer it."""
    started = time.perf_counter()
    labels = ("-", "-")  # workspace, deployment: unknown until the deployment is found
    try:
        status, body, extra, labels = await _invoke(gw, scope, receive)
    except ForwardToLeader as exc:
        return 0, exc, []  # the leader counts it
    except ApiError as exc:
        status, body, extra = error_answer(exc)
    # A stream's latency is the time to its first item: what the caller waited for before anything came.
    gw.metrics.invocation(labels, status, time.perf_counter() - started)
    return status, body, extra


async def _send_answer(gw: Gateway, scope: Scope, receive: Any, send: Any, answer: Answer) -> None:
    """Send an answer that is not a whole body (a stream, the leader's) as ASGI messages, or one that is."""
    status, body, extra = answer
    if isinstance(body, ForwardToLeader):
        await gw.cluster.forward(scope, _replay(body.body, receive), send)
    elif type(body) is bytes:
        await _respond(send, status, body, extra)
    else:
        await body.relay(receive, send, extra)  # type: ignore[union-attr]


async def handle_invoke(gw: Gateway, scope: Scope, receive: Any, send: Any) -> None:
    """Serve one invocation as an ASGI app (a traced gateway's path; ``serve_endpoint`` otherwise)."""
    await _send_answer(gw, scope, receive, send, await _answer(gw, scope, receive))


async def serve_endpoint(gw: Gateway, exchange: Exchange, access_log: bool) -> None:
    """Serve one invocation outside the ASGI cycle: what ``with_request_ids`` and ``handle_invoke`` do, in one write.

    The request gets its id as every other one does; a whole answer is
    written at once; a stream, or a request the leader must answer, goes
    through uvicorn's ASGI ``send`` as it would have.
    """
    scope = exchange.scope
    started = time.perf_counter()
    rid = assign_request_id(scope)
    gw.count_if_forwarded(scope, "endpoint")
    kept = [0]  # the status answered; 0 until then, as the access log of the ASGI path says it
    try:
        await write_answer(gw, exchange, await _answer(gw, scope, exchange.receive), rid, kept)
    finally:
        if access_log:
            log_access(scope, kept[0], started)


def whole_head(extra: list[tuple[bytes, bytes]], rid: bytes) -> bytes:
    """The header lines of a whole (JSON) answer: its content type, ``extra`` and the request id."""
    return _JSON_HEAD + b"".join(b"%s: %s\r\n" % pair for pair in extra) + b"x-request-id: %s\r\n" % rid


def call_headers(container_id: str, call_id: str) -> list[tuple[bytes, bytes]]:
    """The headers that name the container and the call that answered."""
    return [(b"x-cove-container", container_id.encode()), (b"x-cove-call-id", call_id.encode())]


async def write_answer(gw: Gateway, exchange: Exchange, answer: Answer, rid: bytes, kept: list[int]) -> None:
    """Write an invocation's answer with its request id: a whole one at once, else through ASGI ``send``.

    ``kept[0]`` gets the status answered, for the access log.
    """
    status, body, extra = answer
    if type(body) is bytes:
        kept[0] = status
        await exchange.answer(status, whole_head(extra, rid), body)
    else:
        await _send_answer(gw, exchange.scope, exchange.receive, sending_request_id(exchange.send, rid, kept), answer)


class Streaming:
    """A generator endpoint's answer, begun: the container's stream and the lease it holds until it ends."""

    __slots__ = ("deadline", "lease", "slots", "stream")

    def __init__(self, stream: UpstreamStream, slots: Leases, lease: Lease, deadline: float | None) -> None:
        self.stream = stream
        self.slots = slots
        self.lease = lease
        self.deadline = deadline

    async def relay(self, receive: Any, send: Any, extra: list[tuple[bytes, bytes]]) -> None:
        await relay(self.stream, lambda: self.slots.release(self.lease), self.deadline, receive, send, extra)


async def _invoke(
    gw: Gateway, scope: Scope, receive: Any
) -> tuple[int, bytes | Streaming, list[tuple[bytes, bytes]], tuple[str, str]]:
    name, version = parse_path(scope["path"])
    if scope["method"] != "POST":
        raise ApiError(405, "endpoints are invoked with POST and a JSON body")
    headers: dict[bytes, bytes] = dict(scope["headers"])
    workspace, deployment = await find_deployment(gw, headers.get(b"authorization"), name, version, "endpoint")
    parameters = header_parameters(deployment, headers)
    if version is None and gw.cluster.leading:
        deployment = gw.scheduler.serving_version(deployment, parameters)
    elif version is None:
        deployment = await gw.follower.serving_version(deployment, parameters)
    declared = headers.get(b"content-length")
    try:
        declared_size = int(declared) if declared is not None else None
    except ValueError:
        raise ApiError(400, "Content-Length is not a number") from None
    body = await read_body(receive, gw.settings.max_body_bytes, declared_size)
    described = deployment.config.get("inputs")
    if described:
        check_inputs(described, body)
    label = (workspace, f"{deployment.name}/v{deployment.version}")
    timeout = float(stored(deployment.config, deployment.kind, "timeout"))
    call_id = "call-" + random_hex(8)
    follower = None if gw.cluster.leading else gw.follower
    slots: Leases = gw.scheduler if follower is None else follower
    deadline = None if timeout < 0 else asyncio.get_running_loop().time() + timeout
    try:
        with waiting_errors(gw.scheduler, deployment, timeout), gw.deadlines.at(deadline):
            tracing = tracing_of(scope)
            if tracing is None:
                lease = await slots.acquire(deployment, parameters)
                relayed = gw.upstream.invoke(lease.address, body, call_id, stream_accept(headers), request_id(scope))
            else:
                lease, relayed = await _traced(tracing, gw, slots, deployment, parameters, scope, body, call_id)
            try:
                status, payload = await relayed
            except UpstreamError as exc:
                error = await failure_error(slots, follower, lease, exc)
                raise ForwardToLeader if error is None else error from None
            except BaseException:
                slots.release(lease, served=False)  # timed out (or cancelled) before the answer came
                raise
            if type(payload) is bytes:
                slots.release(lease)
    except ForwardToLeader:
        raise ForwardToLeader(body) from None
    extra = call_headers(lease.container_id, call_id)
    if isinstance(payload, UpstreamStream):
        return status, Streaming(payload, slots, lease, deadline), extra, label  # the lease goes with it
    return status, payload, extra, label


async def _traced(
    tracing: Tracing,
    gw: Gateway,
    slots: Leases,
    deployment: Deployment,
    parameters: dict[str, Any] | None,
    scope: Scope,
    body: bytes,
    call_id: str,
) -> tuple[Lease, Any]:
    """``acquire`` and ``invoke`` with spans: the wait for a container, then the relay to it (awaited by the caller)."""
    since = time.time_ns()
    lease = await slots.acquire(deployment, parameters)
    tracing.waited(since, lease, deployment)
    accept = stream_accept(dict(scope["headers"]))

    async def relayed() -> tuple[int, bytes | UpstreamStream]:
        with tracing.relay(lease, deployment, call_id) as traceparent:
            return await gw.upstream.invoke(lease.address, body, call_id, accept, request_id(scope), traceparent)

    return lease, relayed()
