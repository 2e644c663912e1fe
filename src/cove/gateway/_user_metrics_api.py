"""``POST /api/v1/containers/{id}/metrics``: a container's runner posts its handler's Prometheus metrics.

The token is the container's own (its workspace's): a container posts only
for containers of its workspace. ``_user_metrics`` keeps and serves them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ._deps import GatewayDep, PrincipalDep, read_limited
from ._errors import ApiError

router = APIRouter(prefix="/api/v1")

MAX_TEXT_BYTES = 4 * 1024 * 1024


@router.post(
    "/containers/{container_id}/metrics",
    status_code=204,
    summary="A container's runner posts its handler's Prometheus metrics (text format); /metrics serves them",
)
async def post_metrics(container_id: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> Response:
    deployment = gw.scheduler.deployment_of(container_id)
    if deployment is None or deployment.workspace_id != who.workspace_id:
        raise ApiError(404, f"no live container {container_id} in this workspace")
    text = (await read_limited(request, MAX_TEXT_BYTES, "metrics text")).decode("utf-8", "replace")
    try:
        gw.metrics.user.post(container_id, who.workspace_name, deployment.name, deployment.version, text)
    except ValueError as exc:
        raise ApiError(422, f"not Prometheus' text format: {exc}") from None
    return Response(status_code=204)
