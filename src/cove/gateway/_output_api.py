"""A running call's printed output, live: posted by its container, read by the caller that waits on it.

``POST /api/v1/calls/{id}/output`` takes a chunk of text from the container
running the call (its own token, nobody else's) while the call runs.
``GET /api/v1/calls/{id}/output?after=N&wait=S`` answers the text after
character ``N`` as soon as there is some, or when the call ends, or after
``S`` seconds; ``finished`` says the call has ended and all of its posted text
was read. ``.remote`` follows a call this way once it has printed something
before ending (see ``wait_done_or_output``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from .._wire import api as wire
from ..scheduler import FINISHED_STATES, TaskItem
from ..store import token_container
from ._deps import GatewayDep, PrincipalDep, read_limited
from ._errors import ApiError
from ._follower_output import follower_output, stored_answer
from ._functions_api import live_call, stored_call

router = APIRouter(prefix="/api/v1/calls")

MAX_POST_BYTES = 256 * 1024


@router.post("/{call_id}/output", status_code=204, summary="Output of a running call, from its container")
async def post_output(call_id: str, request: Request, gw: GatewayDep, who: PrincipalDep) -> Response:
    item = live_call(gw, who, call_id)
    if item is None:
        raise ApiError(404, f"no running call {call_id!r}")
    if item.state != "RUNNING":
        raise ApiError(409, f"call {call_id} is {item.state}, not running")
    if await token_container(gw.store, who.token_id) != item.container_id:
        raise ApiError(403, "only the container running a call posts its output")
    body = await read_limited(request, MAX_POST_BYTES, "output")
    item.live_output().add(body.decode("utf-8", "replace"))
    return Response(status_code=204)


@router.get(
    "/{call_id}/output", summary="A call's output posted live, after a character offset", response_model=wire.CallOutput
)
async def read_output(
    call_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    after: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
) -> dict[str, Any]:
    if not gw.cluster.leading:  # the leader holds the output its containers post: read just that from it
        return await follower_output(gw, who, call_id, after, wait)
    item = live_call(gw, who, call_id)
    if item is None:
        # Ended long enough ago to have left memory: its output is in its outcome.
        return stored_answer(await stored_call(gw, who, call_id), after)
    return await live_answer(item, after, wait)


async def live_answer(item: TaskItem, after: int, wait: float) -> dict[str, Any]:
    """The text ``item`` posted after ``after``, waiting up to ``wait`` seconds for some (or for its end)."""
    live = item.live_output()
    if live.size <= after and item.state not in FINISHED_STATES and wait > 0:
        await live.wait(wait)
    text = live.text(after)
    finished = item.state in FINISHED_STATES
    return {"call_id": item.id, "text": text, "next": after + len(text), "state": item.state, "finished": finished}


async def wait_done_or_output(item: TaskItem, timeout: float) -> bool:
    """Wait until the call ends (True) or has posted output while running (False); ``TimeoutError`` past ``timeout``."""
    live = item.live_output()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not item.done.is_set():
        if live.size:
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        await live.wait(remaining)
    return True
