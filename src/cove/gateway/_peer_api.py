"""What this gateway gives other gateways of its cluster: the content-addressed files it holds itself.

Only gateways know the token (it is derived from the cluster's secret key),
and the routes are not part of the published API. Each answers from this
gateway's own home only, never by asking another peer, so a file nobody has
is a 404 at once rather than a loop. The leader also takes the followers'
demand reports here (the requests they hold), for its autoscaler, their
cold starts (requests for a deployment with no ready container), and their
reads of a running call's live output (its containers post it to the leader).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse

from .._wire import peers as wire
from ._deps import GatewayDep
from ._errors import ApiError
from ._images_api import exporter
from ._output_api import live_answer
from ._sandbox_api import touch_reported
from ._state import Gateway

_SHA256 = re.compile(r"[0-9a-f]{64}")
_WORKSPACE = re.compile(r"[A-Za-z0-9_-]{1,40}")


async def _peer(gw: GatewayDep, x_cove_peer: Annotated[str, Header()] = "") -> Gateway:
    if not hmac.compare_digest(x_cove_peer.encode(), gw.content.token.encode()):
        raise ApiError(403, "only the gateways of this cluster may fetch files from each other")
    return gw


PeerDep = Annotated[Gateway, Depends(_peer)]
router = APIRouter(prefix=wire.PEER_PREFIX, include_in_schema=False)


def _hash(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ApiError(400, f"{value!r} is not a lowercase hex sha256")
    return value


def _missing(what: str) -> ApiError:
    return ApiError(404, f"{what} is not on this gateway")


@router.post("/demand")
async def peer_demand(request: Request, gw: PeerDep) -> dict[str, object]:
    """A follower's requests per deployment and container; the answer says what runs on each container elsewhere."""
    if not gw.cluster.leading:
        raise ApiError(409, "this gateway does not lead the cluster; report to the leader")
    try:
        report = wire.DemandReport.from_dict(await request.json())
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    reply = gw.scheduler.report_demand(report).to_dict()
    touch_reported(gw, report.containers)  # sandboxes used through that gateway are not idle
    return reply


@router.post("/cold")
async def peer_cold(request: Request, gw: PeerDep) -> dict[str, object]:
    """A follower's requests for a deployment with no ready container: start containers, or say why none can."""
    if not gw.cluster.leading:
        raise ApiError(409, "this gateway does not lead the cluster; ask the leader")
    try:
        ask = wire.ColdStart.from_dict(await request.json())
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    deployment = await gw.store.get_deployment_by_id(ask.deployment_id)
    if deployment is None:
        raise _missing(f"deployment {ask.deployment_id}")
    return gw.scheduler.cold_start(ask, deployment).to_dict()


@router.get("/calls/{call_id}/output")
async def peer_output(
    call_id: str,
    gw: PeerDep,
    after: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
) -> dict[str, Any]:
    """The live output of a call this gateway runs; 404 when it holds none (the follower then reads the store).

    The follower that asks has authorised its caller against the call's row.
    """
    item = gw.scheduler.dispatcher.find(call_id) if gw.cluster.leading else None
    if item is None:
        raise _missing(f"call {call_id}")
    return await live_answer(item, after, wait)


@router.get("/code/{code_hash}")
async def peer_code(code_hash: str, gw: PeerDep) -> FileResponse:
    path = gw.content.local_code(_hash(code_hash))
    if path is None:
        raise _missing(f"code {code_hash}")
    return FileResponse(path, media_type="application/gzip")


@router.get("/blobs/{workspace_id}/{sha256}")
async def peer_blob(workspace_id: str, sha256: str, gw: PeerDep) -> FileResponse:
    if not _WORKSPACE.fullmatch(workspace_id):
        raise ApiError(400, f"{workspace_id!r} is not a workspace id")
    path = gw.content.local_blob(workspace_id, _hash(sha256))
    if path is None:
        raise _missing(f"blob {sha256}")
    return FileResponse(path, media_type="application/octet-stream")


@router.get("/images/{image_id}/{part}")
async def peer_export(image_id: str, part: str, gw: PeerDep) -> FileResponse:
    _hash(image_id)
    try:
        archive = await exporter(gw).archive(image_id, part)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    except LookupError:
        cached = gw.content.local_export(image_id, part)
        if cached is None:
            raise _missing(f"image {image_id[:12]} ({part})") from None
        archive = cached
    return FileResponse(archive.path, media_type="application/gzip", headers={wire.SHA256_HEADER: archive.sha256})
