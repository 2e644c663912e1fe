"""``GET /api/v1/changes``: server-sent events that tell an open dashboard page what changed, as it changes.

A page subscribes once (``EventSource``, with the session cookie, so the
stream sees exactly what the caller's API calls see) and refreshes only the
parts whose kind changed: ``deployments``, ``containers``, ``events``,
``tasks``. The gateway compares the workspace's change marks
(:func:`cove.store.change_marks`) every ``TICK_SECONDS`` and sends one
``change`` event naming the kinds that moved, so a page hears of a deploy or a
container becoming ready within about a second, from any gateway of a
cluster, without each page polling every list. A comment line keeps idle
connections open through proxies.

The stream ends when the server stops (``ChangeFeed.end``), so an open
page never holds a shutdown back; the browser's ``EventSource`` reconnects
to whichever gateway answers next (``retry``), and pages fall back to polling
while no stream is open.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ..store import Principal, change_marks
from ._change_feed import ChangeFeed
from ._deps import GatewayDep, PrincipalDep
from ._state import Gateway

router = APIRouter(prefix="/api/v1")

TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
RETRY_MILLIS = 3000  # how soon a browser reconnects after the stream ended (a restart, a new gateway)
EVENT_STREAM = "text/event-stream"
# One event of the stream as OpenAPI describes text/event-stream items: ``ready`` names the kinds watched,
# ``change`` the kinds that moved, in JSON data.
CHANGE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["ready", "change"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["topics"],
                "properties": {"topics": {"type": "array", "items": {"type": "string"}}},
            },
        },
        "retry": {"type": "integer"},
    },
}


def _message(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _changes(gw: Gateway, who: Principal, feed: ChangeFeed) -> AsyncIterator[bytes]:
    cluster = who.role == "admin"
    marks = await change_marks(gw.store, who.workspace_id, cluster=cluster)
    yield f"retry: {RETRY_MILLIS}\n\n".encode() + _message("ready", {"topics": sorted(marks)})
    quiet_since = time.monotonic()
    while not feed.ended.is_set():
        try:
            await asyncio.wait_for(feed.ended.wait(), TICK_SECONDS)
            return
        except TimeoutError:
            pass
        now = await change_marks(gw.store, who.workspace_id, cluster=cluster)
        moved = sorted(topic for topic, mark in now.items() if marks.get(topic) != mark)
        marks = now
        if moved:
            yield _message("change", {"topics": moved})
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield b": still here\n\n"
            quiet_since = time.monotonic()


@router.get(
    "/changes",
    summary="Server-sent events naming what changed in the workspace (deployments, containers, events, tasks)",
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {"schema": CHANGE_EVENT}}}},
)
async def changes(gw: GatewayDep, who: PrincipalDep) -> StreamingResponse:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(_changes(gw, who, gw.changes), media_type=EVENT_STREAM, headers=headers)
