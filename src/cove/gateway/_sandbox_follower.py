"""Requests to a sandbox's agent on a gateway that does not lead: relayed straight to the sandbox's container.

The leader creates and ends sandboxes and keeps their deadlines in memory; the
container, its address and whether it is ready are in the store, which this
gateway mirrors (``FollowerSlots``). So exec, file and output requests go from
here to the agent, as on the leader, without a hop through it. The leader
learns that the sandbox is in use from this gateway's demand reports (the
containers it relayed to), which move its idle deadline.

Everything that needs the leader's own view is handed to it: a sandbox with
no ready container this gateway can reach (still starting, listening on
another host's unix socket, or from before the leader restarted: the leader
answers what it would), and any request while no leader answers an ask. Bad
input gets the leader's answers here: 404 for an unknown or ended sandbox,
400/413 for a bad or too large ``Content-Length``, 502 when the agent fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request, Response

from ..exceptions import NotFound
from ..scheduler import StartFailed
from ..store import Deployment, Principal
from ._errors import ApiError
from ._follower_slots import ForwardToLeader
from ._sandbox_proxy import AgentError, check_declared_length, open_agent_request
from ._state import Gateway

START_SECONDS = 120.0  # as on the leader: how long a request waits for room on the sandbox's container


class _HandedToLeader(Response):
    """The leader's answer to the request, whose body this gateway has not read."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__()
        self._gw = gw

    async def __call__(
        self, scope: Any, receive: Any, send: Callable[[MutableMapping[str, Any]], Awaitable[None]]
    ) -> None:
        await self._gw.cluster.forward(scope, receive, send)


async def _sandbox(gw: Gateway, who: Principal, sandbox_id: str) -> Deployment:
    try:
        row = await gw.store.get_deployment(who.workspace_id, sandbox_id)
    except NotFound:
        raise ApiError(404, f"sandbox {sandbox_id!r} does not exist or has ended") from None
    if row.kind != "sandbox":
        raise ApiError(404, f"sandbox {sandbox_id!r} does not exist or has ended")
    return row


async def relay_from_follower(gw: Gateway, who: Principal, sandbox_id: str, rest: str, request: Request) -> Response:
    """Relay one request to the sandbox's agent from this gateway, or hand it to the leader when it must."""
    row = await _sandbox(gw, who, sandbox_id)
    limit = gw.settings.max_body_bytes
    length = check_declared_length(request.headers, limit)
    slots = gw.follower
    if not slots.has_ready(row.id):
        return _HandedToLeader(gw)
    try:
        lease = await asyncio.wait_for(slots.acquire(row), START_SECONDS)
    except ForwardToLeader:
        return _HandedToLeader(gw)
    except (StartFailed, TimeoutError) as exc:
        raise ApiError(503, f"the sandbox is not running: {exc}") from None
    query = request.url.query
    try:
        return await open_agent_request(
            lease.address,
            request.method,
            "/" + rest + (f"?{query}" if query else ""),
            request.stream(),
            length=length,
            content_type=request.headers.get("content-type"),
            limit=limit,
            done=lambda: slots.release(lease),
        )
    except AgentError as exc:
        raise ApiError(502, str(exc)) from None
