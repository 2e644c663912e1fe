"""``POST /api/v1/containers/{id}/traces``: a container's runner posts its spans, sent on to the collector.

Containers often have no network (the ``crun`` engine gives them only
``lo``), but they reach their gateway: the runner posts the handler's
spans (and the user's own) here as OTLP JSON, and the gateway sends them
on to ``COVE_OTLP_ENDPOINT`` as protobuf, labelled with the container's
deployment, version and id. The token is the container's own (its
workspace's), as for its metrics.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ._deps import GatewayDep, PrincipalDep, read_limited
from ._errors import ApiError
from ._tracing import tracing_of

router = APIRouter(prefix="/api/v1")

MAX_SPANS_BYTES = 8 * 1024 * 1024


@router.post(
    "/containers/{container_id}/traces",
    status_code=204,
    summary="A container's runner posts its spans (OTLP JSON); the gateway sends them to its OTLP collector",
)
async def post_traces(container_id: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> Response:
    tracing = tracing_of(request.scope)
    if tracing is None:
        raise ApiError(409, "this gateway exports no traces: COVE_OTLP_ENDPOINT is not set")
    deployment = gw.scheduler.deployment_of(container_id)
    if deployment is None or deployment.workspace_id != who.workspace_id:
        raise ApiError(404, f"no live container {container_id} in this workspace")
    body = await read_limited(request, MAX_SPANS_BYTES, "spans")
    labels: dict[str, str | int] = {
        "service.name": deployment.name,
        "cove.workspace": who.workspace_name,
        "cove.deployment": deployment.name,
        "cove.version": deployment.version,
        "cove.container": container_id,
    }
    try:
        await tracing.forward(body, labels)
    except ValueError as exc:
        raise ApiError(422, f"not an OTLP JSON trace export: {exc}") from None
    return Response(status_code=204)
