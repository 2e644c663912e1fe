"""The express lane: a warm invocation served in callbacks, with no task.

A ``POST /endpoint/...`` whose every step is known at once (its token, or
the default workspace of a call without one, and its deployment are cached,
the function takes no class parameters, a container has a free slot)
awaits nothing but the container's answer. The server's protocol offers
each such request here as soon as its body is whole
(``cove.server._http_protocol``); the lane does those steps there and then,
sends the request on a callback connection (``_upstream_direct``) and writes
the answer from that connection's callback. The coroutine path
(``_invoke.serve_endpoint``) costs a task, a dozen coroutine frames and a
future per await on every request; this one costs none of them.

Whatever is not known at once (a token or deployment to read from the store,
a cold pool, a follower without a ready container, class parameters, an error
to word) is declined before anything changed, and the coroutine path serves
it. What happens after the request was sent and needs awaiting (a failed
container to ask about, a generator's stream to relay) continues in a task,
as it would have there. Both paths answer the same bytes: the tests of the
invocation path run against this lane whenever the container is warm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._wire.defaults import stored
from ..scheduler import Lease
from ..store import Deployment, random_hex
from ._errors import ApiError
from ._follower_slots import FollowerSlots, ForwardToLeader
from ._inputs import check_inputs
from ._invoke import (
    Answer,
    Exchange,
    Leases,
    Streaming,
    call_headers,
    error_answer,
    failure_error,
    parse_path,
    waiting_errors,
    whole_head,
    write_answer,
)
from ._request_ids import assign_request_id, log_access
from ._streams import stream_accept
from ._upstream import UpstreamError, UpstreamStream, invoke_request

if TYPE_CHECKING:
    from ._state import Gateway
    from ._upstream_direct import DirectConnection

_PARAMETERS = b"x-cove-parameters"  # a class's parameters: its pool is chosen by the coroutine path
_MAX_PATHS = 4096  # remembered endpoint paths; past this many the memory starts over
_MAX_PLANS = 4096  # remembered deployment plans, alike
_ERROR_LABELS = ("-", "-")  # workspace, deployment of an error's count, as the coroutine path counts it


class ExpressExchange(Exchange, Protocol):
    """What the lane needs of the server's request (``DirectExchange``) besides what the coroutine path uses."""

    def body_size(self) -> int: ...

    def body(self) -> bytes: ...

    def drop_body(self) -> None: ...

    def answer_now(self, status: int, headers: bytes, body: bytes) -> bool: ...

    def serve_in_task(self, handler: Callable[[Any], Awaitable[None]]) -> None: ...


class _Plan:
    """What a deployment's calls need from its config, read once per cached row instead of per call."""

    __slots__ = ("authorized", "deployment", "endpoint", "inputs", "label", "parameters", "timeout")

    def __init__(self, workspace: str, deployment: Deployment) -> None:
        self.deployment = deployment
        self.endpoint = deployment.kind == "endpoint"  # another kind: the coroutine path says where it answers
        self.authorized = bool(stored(deployment.config, deployment.kind, "authorized"))
        self.label = (workspace, f"{deployment.name}/v{deployment.version}")
        self.timeout = float(stored(deployment.config, deployment.kind, "timeout"))
        self.inputs = deployment.config.get("inputs")
        self.parameters = bool(deployment.config.get("class_parameters"))


class ExpressLane:
    """Offered each endpoint request with its whole body: serves it (True) or declines, having changed nothing."""

    __slots__ = ("_access_log", "_paths", "_plans", "gateway")

    def __init__(self, access_log: bool) -> None:
        self.gateway: Gateway | None = None  # set while the app runs (its lifespan)
        self._access_log = access_log
        self._paths: dict[str, tuple[str, int | None] | None] = {}
        self._plans: dict[int, _Plan] = {}  # by the identity of the cached row (no ORM attribute read per call)

    def __call__(self, exchange: ExpressExchange) -> bool:
        started = time.perf_counter()
        gw = self.gateway
        if gw is None:
            return False
        scope = exchange.scope
        target = self._target(scope["path"])
        if target is None:
            return False
        headers: dict[bytes, bytes] = dict(scope["headers"])
        if _PARAMETERS in headers:
            return False
        authorization = headers.get(b"authorization")
        if authorization is None:  # the default workspace's endpoints that were deployed authorized=False
            known = gw.auth.cached_workspace(gw.settings.default_workspace)
            if known is None:
                return False
            workspace_id, workspace = known
        else:
            who = gw.auth.cached(authorization)
            if who is None:
                return False
            workspace_id, workspace = who.workspace_id, who.workspace_name
        name, version = target
        deployment = gw.deployments.peek(workspace_id, name, version)
        if deployment is None:
            return False
        plan = self._plans.get(id(deployment))
        if plan is None or plan.deployment is not deployment:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[id(deployment)] = _Plan(workspace, deployment)
        if (
            not plan.endpoint
            or plan.parameters
            or (plan.authorized and authorization is None)
            or exchange.body_size() > gw.settings.max_body_bytes
        ):
            return False
        body = exchange.body()
        if plan.inputs:
            try:
                check_inputs(plan.inputs, body)
            except ApiError:
                return False
        # The newest version answers a call to the name once it has a ready container (``serving_version``):
        # here only when the slot taken is such a one; otherwise the coroutine path picks the version.
        lease: Lease | None
        if gw.cluster.leading:
            slots: Leases = gw.scheduler
            lease = gw.scheduler.try_acquire(deployment, ready_only=version is None)
        else:
            slots = gw.follower
            ready = version is not None or gw.follower.ready_version(deployment) is not None
            lease = gw.follower.try_acquire(deployment) if ready else None
        if lease is None:
            return False
        # Served here from now on: an error is this request's 500, as one the coroutine path lets out.
        exchange.drop_body()
        call = None
        try:
            rid = assign_request_id(scope)
            gw.count_if_forwarded(scope, "endpoint")
            call = _Call(self._access_log, gw, exchange, slots, lease, plan, body, rid, started)
            if plan.timeout >= 0:
                call.deadline = asyncio.get_running_loop().time() + plan.timeout
                gw.deadlines.watch(call.deadline, call)
            request = invoke_request(body, call.call_id, stream_accept(headers), rid.decode("ascii"))
            gw.upstream.direct.send(lease.address, request, call)
            if gw.front is not None:
                gw.front.offer(
                    authorization, workspace_id, name, version, deployment, plan.label,
                    plan.authorized, plan.timeout, gw.settings.max_body_bytes,
                )  # fmt: skip
        except Exception as exc:
            if call is None or not call.done:
                if call is not None:
                    call.done = True
                    gw.deadlines.unwatch(call)
                slots.release(lease, served=False)
                exchange.serve_in_task(_raising(exc))
        return True

    def _target(self, path: str) -> tuple[str, int | None] | None:
        """The endpoint name and version of a path, remembered; None for a path that names none."""
        try:
            return self._paths[path]
        except KeyError:
            pass
        try:
            target: tuple[str, int | None] | None = parse_path(path)
        except ApiError:
            target = None
        if len(self._paths) >= _MAX_PATHS:
            self._paths.clear()
        self._paths[path] = target
        return target


def _raising(exc: Exception) -> Callable[[Any], Awaitable[None]]:
    """A handler that lets ``exc`` out, for the server to log and answer with a 500."""

    async def handler(exchange: Any) -> None:
        raise exc

    return handler


class _Call:
    """One invocation on its way: the container connection's waiter, and its deadline's."""

    __slots__ = (
        "_access_log",
        "_body",
        "_error",
        "_exchange",
        "_gw",
        "_lease",
        "_plan",
        "_rid",
        "_slots",
        "_started",
        "call_id",
        "connection",
        "deadline",
        "done",
        "key",
    )

    def __init__(
        self,
        access_log: bool,
        gw: Gateway,
        exchange: ExpressExchange,
        slots: Leases,
        lease: Lease,
        plan: _Plan,
        body: bytes,
        rid: bytes,
        started: float,
    ) -> None:
        self._access_log = access_log
        self._gw = gw
        self._exchange = exchange
        self._slots = slots
        self._lease = lease
        self._plan = plan
        self._body = body  # kept for the leader, should a follower's container turn out gone
        self._rid = rid
        self._started = started
        self._error: UpstreamError | None = None
        self.call_id = "call-" + random_hex(8)
        self.connection: DirectConnection | None = None
        self.deadline: float | None = None  # loop time; None: no timeout
        self.done = False
        self.key = 0  # the deadline's instant, set by ``Deadlines.watch``

    # -- the container connection's callbacks ----------------------------------------------------

    def answered(self, status: int, payload: bytes) -> None:
        if not self._finish():
            return
        self._slots.release(self._lease)
        metrics = self._gw.metrics
        metrics.invocation(self._plan.label, status, time.perf_counter() - self._started)
        metrics.express.inc(self._plan.label[:1])
        head = whole_head(call_headers(self._lease.container_id, self.call_id), self._rid)
        exchange = self._exchange
        if not exchange.answer_now(status, head, payload):  # the client reads slowly: wait for it in a task
            exchange.serve_in_task(lambda later: later.answer(status, head, payload))
        if self._access_log:
            log_access(exchange.scope, status, self._started)

    def streaming(self, status: int, stream: UpstreamStream) -> None:
        if not self._finish():
            stream.close()
            return
        self._gw.metrics.invocation(self._plan.label, status, time.perf_counter() - self._started)
        answer: Answer = (
            status,
            Streaming(stream, self._slots, self._lease, self.deadline),
            call_headers(self._lease.container_id, self.call_id),
        )
        self._in_task(self._given(answer))

    def failed(self, error: UpstreamError) -> None:
        if self._finish():
            self._error = error
            self._in_task(self._after_failure())

    # -- the deadline's ---------------------------------------------------------------------------

    def expire(self) -> None:
        """The deployment's timeout passed before the answer: a 504, as the coroutine path answers it."""
        if self.done:
            return
        self.done = True
        if self.connection is not None:
            self.connection.abandon()
        self._slots.release(self._lease, served=False)
        deployment = self._plan.deployment
        error = waiting_errors(self._gw.scheduler, deployment, self._plan.timeout).error_for(TimeoutError())
        assert error is not None  # a timeout always has its error
        self._in_task(self._given(self._counted_error(error)))

    # -- helpers ----------------------------------------------------------------------------------

    def _finish(self) -> bool:
        """Mark the call answered (False when it was already: timed out); its deadline no longer watched."""
        if self.done:
            return False
        self.done = True
        if self.deadline is not None:
            self._gw.deadlines.unwatch(self)
        return True

    def _counted_error(self, error: ApiError) -> Answer:
        answer = error_answer(error)
        self._gw.metrics.invocation(_ERROR_LABELS, answer[0], time.perf_counter() - self._started)
        return answer

    async def _given(self, answer: Answer) -> Answer:
        return answer

    async def _after_failure(self) -> Answer:
        assert self._error is not None
        slots = self._slots
        follower = slots if isinstance(slots, FollowerSlots) else None
        error = await failure_error(slots, follower, self._lease, self._error)
        if error is None:
            return 0, ForwardToLeader(self._body), []  # the leader answers, and counts it
        return self._counted_error(error)

    def _in_task(self, answer: Awaitable[Answer]) -> None:
        """Finish in a task: get the answer (awaiting what it needs), write it, log it."""
        gw, rid, started, access_log = self._gw, self._rid, self._started, self._access_log

        async def finish(exchange: Any) -> None:
            kept = [0]
            try:
                await write_answer(gw, exchange, await answer, rid, kept)
            finally:
                if access_log:
                    log_access(exchange.scope, kept[0], started)

        self._exchange.serve_in_task(finish)
