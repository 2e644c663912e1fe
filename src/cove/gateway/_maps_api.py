"""``.map`` over HTTP, served by any gateway: a map, its inputs in batches, and its outputs after a cursor.

A map is a row; its inputs are task rows with its id and their index (the
leader runs them, wherever they were accepted), and the leader numbers each
finished one in order of completion. The cursor a caller passes back is that
number, the same on every gateway, so a caller can read on through another
gateway (after a failover, say) where it left off. The SDK puts outputs
back in input order itself when asked to.

The leader also keeps the outputs of the maps created on it in memory until
they are read, and answers a caller that stays with it from there; every
other read comes from the store, woken by NOTIFY when outputs are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from .._wire import api as wire
from .._wire.frames import FrameError, pack, unpack
from ..scheduler import MapState
from ..store import Map, Principal, get_map, map_outputs, map_progress
from ._deps import GatewayDep, PrincipalDep, read_limited
from ._errors import ApiError
from ._functions_api import _submit, task_deployment
from ._patterns import Version
from ._request_ids import call_origin
from ._state import Gateway

router = APIRouter()
STORE_OUTPUTS_PER_READ = 2000  # outputs one read from the store returns at most; the caller asks again for more


@router.post("/api/v1/functions/{name}/maps", status_code=201, response_model=wire.MapCreated)
async def create_map(name: str, gw: GatewayDep, who: PrincipalDep, version: Version = None) -> dict[str, Any]:
    deployment = await task_deployment(gw, who, name, version)
    state = await gw.scheduler.dispatcher.new_map(deployment)
    return {"map_id": state.id}


def _not_found(map_id: str) -> ApiError:
    return ApiError(404, f"no map {map_id!r} (maps are kept for an hour after their last use)")


def _in_memory(gw: Gateway, who: Principal, map_id: str) -> MapState | None:
    """The map as this gateway's dispatcher keeps it, when it serves the map's outputs from memory."""
    state = gw.scheduler.dispatcher.maps.get(map_id)
    if state is None or not state.keeps_outputs:
        return None
    if state.deployment.workspace_id != who.workspace_id:
        raise _not_found(map_id)
    return state


async def _stored(gw: Gateway, who: Principal, map_id: str) -> Map:
    row = await get_map(gw.store, map_id)
    if row is None or row.workspace_id != who.workspace_id:
        raise _not_found(map_id)
    return row


async def _stored_state(gw: Gateway, who: Principal, map_id: str) -> MapState:
    """A map this gateway does not keep in memory, from its row: 404 when there is none in the workspace."""
    row = await _stored(gw, who, map_id)
    deployment = await gw.store.get_deployment_by_id(row.deployment_id)
    if deployment is None:
        raise _not_found(map_id)
    state = await gw.scheduler.dispatcher.stored_map(map_id, deployment)
    state.cancelled = state.cancelled or row.cancelled
    return state


@router.post(
    "/api/v1/maps/{map_id}/inputs",
    status_code=202,
    summary="Add framed inputs {index} to a map",
    response_model=wire.MapInputsAccepted,
)
async def map_inputs(map_id: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    state = _in_memory(gw, who, map_id) or await _stored_state(gw, who, map_id)
    if state.cancelled:
        raise ApiError(409, f"map {map_id} was cancelled")
    body = await read_limited(request, gw.settings.max_body_bytes * 4)
    try:
        header, items = unpack(body, "inputs")
    except FrameError as exc:
        raise ApiError(400, f"malformed input batch: {exc}") from None
    first = header.get("first_index")
    if first != state.submitted:  # inputs may have come through another gateway: the store has them all
        state.submitted, _ = await map_progress(gw.store, map_id)
    if not isinstance(first, int) or first != state.submitted:
        raise ApiError(409, f"inputs must continue at index {state.submitted}, not {first!r}")
    state.touched = time.time()
    await _submit(
        gw,
        state.deployment,
        [("pickle", data) for _, data in items],
        durable=True,
        map_state=state,
        first_index=first,
        origin=call_origin(request.scope),
    )
    return {"accepted": len(items), "submitted": state.submitted}


@router.get(
    "/api/v1/maps/{map_id}/outputs",
    summary="Finished outputs after a cursor, framed",
    response_class=Response,
    responses={
        200: wire.binary(
            "application/octet-stream",
            "A frame: the header {next, submitted, finished}, then per finished output {index, ok, error} "
            "and its payload (the pickled result or exception); ``next`` is the cursor to pass as ``after``",
        )
    },
)
async def map_outputs_view(
    map_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    after: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=60)] = 10,
) -> Response:
    state = _in_memory(gw, who, map_id)
    if state is not None and after >= state.offset:
        return await _from_memory(state, after, wait)
    await _stored(gw, who, map_id)
    return await _from_store(gw, map_id, after, wait)


async def _from_memory(state: MapState, after: int, wait: float) -> Response:
    """The leader's fast path: outputs kept since the caller's last read, released once it reads past them."""
    state.touched = time.time()
    if after > state.offset:  # the caller has what came before: release it
        del state.outputs[: after - state.offset]
        state.offset = after
    if not state.outputs and wait > 0:
        state.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.changed.wait(), wait)
    ready = list(state.outputs)
    metas = []
    payloads = []
    for item in ready:
        metas.append(_meta(item.map_index, item.state, item.error, item.attempts))
        payloads.append(item.result or b"")
    header = {"next": state.offset + len(ready), "submitted": state.submitted, "finished": state.finished}
    return Response(pack(header, metas, payloads, "outputs"), media_type="application/octet-stream")


async def _from_store(gw: Gateway, map_id: str, after: int, wait: float) -> Response:
    """Outputs numbered ``after`` onwards from the store, waiting up to ``wait`` seconds for the first."""
    watch = gw.cluster.map_watch
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with watch.watching(map_id) as event:
        rows = await map_outputs(gw.store, map_id, after, STORE_OUTPUTS_PER_READ)
        while not rows and loop.time() < deadline:
            await watch.wait(event, deadline - loop.time())
            rows = await map_outputs(gw.store, map_id, after, STORE_OUTPUTS_PER_READ)
    submitted, finished = await map_progress(gw.store, map_id)
    metas = [_meta(row.map_index, row.state, row.error, row.attempts or []) for row in rows]
    header = {"next": after + len(rows), "submitted": submitted, "finished": finished}
    body = pack(header, metas, [row.result or b"" for row in rows], "outputs")
    return Response(body, media_type="application/octet-stream")


def _meta(index: int | None, state: str, error: dict[str, Any] | None, attempts: list[Any]) -> dict[str, Any]:
    failure = None
    if state != "COMPLETE":
        failure = {**(error or {}), "attempts": attempts}
    return {"index": index, "ok": state == "COMPLETE", "error": failure}


@router.delete("/api/v1/maps/{map_id}", response_model=wire.MapCancelled)
async def cancel_map(map_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    if _in_memory(gw, who, map_id) is None:
        await _stored(gw, who, map_id)
    return {"map_id": map_id, "cancelled": await gw.scheduler.dispatcher.cancel_map(map_id)}
