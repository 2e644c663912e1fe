"""``POST /api/v1/functions/{name}/stream``: ``f.remote_gen(...)``, a generator function's items as they come.

The call is found and authorized as ``.remote`` is (a token of the
function's workspace), and answered live, as an endpoint call is: a
container of the function is leased and the runner's records (pickled items,
printed output, the failure, see ``cove._wire.stream``) are relayed to the
caller (``_streams``). The gateway never unpickles them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from .._wire import api as wire
from .._wire.stream import RECORDS
from ..scheduler import Lease
from ._asgi_route import slots_of
from ._error_responses import ErrorBody
from ._errors import ApiError, error_body
from ._follower_slots import ForwardToLeader
from ._functions_api import task_deployment
from ._invoke import Leases, read_body
from ._invoke import _replay as replay_body
from ._parameters import payload_parameters
from ._state import Gateway
from ._streams import open_stream, relay
from ._upstream import UpstreamStream

PREFIX = "/api/v1/functions/"
SUFFIX = "/stream"

router = APIRouter()


@router.post(
    "/api/v1/functions/{name}/stream",
    summary="Stream a generator function's items (f.remote_gen): body is pickled (args, kwargs)",
    description=(
        "Runs the call at once in a container of the function and answers as the generator yields: "
        f"chunked `{RECORDS}` records, each `[1-byte kind][4-byte length][payload]`: 1 an item (pickled), "
        "2 printed output (UTF-8), 3 the failure (the JSON error of a failed call, with the pickled exception), "
        "4 the end. A stream that stops before 3 or 4 broke off. Not durable and not retried; the "
        "deployment's timeout bounds the whole stream."
    ),
    response_class=Response,
    responses={
        200: wire.binary(RECORDS, "The generator's items, as they come", {"X-Cove-Container": "The container"}),
        502: {"model": ErrorBody, "description": "The container failed before answering"},
        503: {"model": ErrorBody, "description": "No container could be started, or the deployment stopped"},
        504: {"model": ErrorBody, "description": "No answer within the deployment's timeout"},
    },
)
async def stream_call(name: str) -> Response:
    """Never reached through the gateway, which serves the path itself (``handle_stream``)."""
    raise ApiError(404, "streamed calls are served by the gateway's call path")


def handles(scope: dict[str, Any]) -> bool:
    """``POST /api/v1/functions/{name}/stream``, with no query."""
    path: str = scope["path"]
    return (
        scope["method"] == "POST"
        and path.startswith(PREFIX)
        and path.endswith(SUFFIX)
        and len(path) > len(PREFIX) + len(SUFFIX)
        and "/" not in path[len(PREFIX) : -len(SUFFIX)]
    )


async def handle_stream(gw: Gateway, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A ``.remote_gen`` call: authenticated and found as ``.remote`` is, answered live from a leased container.

    Every gateway serves it: a follower relays to a container it sees ready
    (asking the leader for one when none is, as for an endpoint call) and
    hands the call to the leader, body and all, only when it cannot.
    """
    slots = slots_of(gw)
    try:
        stream, lease, deadline = await _open(gw, slots, scope, receive)
    except ForwardToLeader as exc:
        await gw.cluster.forward(scope, replay_body(exc.body, receive), send)  # the leader counts it
        return
    except ApiError as exc:
        body = error_body(exc.status, exc.message, exc.type)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    extra = [(b"x-cove-container", lease.container_id.encode())]
    await relay(stream, lambda: slots.release(lease), deadline, receive, send, extra)


async def _open(
    gw: Gateway, slots: Leases, scope: dict[str, Any], receive: Any
) -> tuple[UpstreamStream, Lease, float | None]:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization")
    who = await gw.auth.principal(authorization.decode("latin-1") if authorization else None)
    deployment = await task_deployment(gw, who, scope["path"][len(PREFIX) : -len(SUFFIX)], None)
    declared = headers.get(b"content-length")
    try:
        size = int(declared) if declared else None
    except ValueError:
        raise ApiError(400, "Content-Length is not a number") from None
    body = await read_body(receive, gw.settings.max_body_bytes, size)
    never_reached = None if gw.cluster.leading else gw.follower.never_reached
    try:
        return await open_stream(
            slots,
            deployment,
            lambda address, call_id: gw.upstream.stream(address, body, call_id),
            payload_parameters(deployment, body),
            never_reached,
        )
    except ForwardToLeader:
        raise ForwardToLeader(body) from None
