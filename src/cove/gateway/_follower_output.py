"""A running call's live output through a gateway that does not lead: only the output is read from the leader.

The leader runs every call, and the call's container posts what it prints to
it (``POST /api/v1/calls/{id}/output``), into memory. A follower that
accepted a ``.remote`` keeps the call itself (a row, its end announced by
NOTIFY) and asks the leader for the output only, on a peer route
(:func:`cove._wire.peers.output_route`): one long poll at a time per
caller that follows a call, and none for a call that ends before the runner
posts anything (it posts only after ``FIRST_POST_SECONDS``), so a quick
``.remote`` through a follower costs the leader nothing. The caller is
authorised here, against the call's row, exactly as on the leader.

Without a leader (it died; the lease has not moved yet) the output stays in
the outcome, as for a call that printed nothing live: a read waits for the
call's end instead, so a caller never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..cluster import LeaderUnreachable
from ..scheduler import FINISHED_STATES, TaskItem
from ..store import Principal, Task
from ._functions_api import stored_call, wait_stored
from ._state import Gateway

FIRST_POST_SECONDS = 0.5  # the runner posts a call's output only once it has run this long (``LIVE_AFTER_SECONDS``)
NOT_YET_SECONDS = 0.5  # how long before asking again when the leader holds no output of the call yet
POLL_SECONDS = 30.0  # the longest one read of the leader waits for output


def stored_answer(row: Task, after: int) -> dict[str, Any]:
    """The answer for a call whose output no gateway holds live: its state, no text (it is in the outcome)."""
    return {"call_id": row.id, "text": "", "next": after, "state": row.state, "finished": row.state in FINISHED_STATES}


async def _leader_output(gw: Gateway, call_id: str, after: int, wait: float) -> dict[str, Any] | None:
    read = gw.follower.read_output
    if read is None:
        raise LeaderUnreachable("this gateway does not talk to a leader")
    return await read(call_id, after, wait)


async def follower_output(gw: Gateway, who: Principal, call_id: str, after: int, wait: float) -> dict[str, Any]:
    """``GET /api/v1/calls/{id}/output`` on a follower: the leader's live text, or the call's state from the store."""
    row = await stored_call(gw, who, call_id)  # 404 outside the caller's workspace, as on the leader
    try:
        answer = await _leader_output(gw, call_id, after, wait)
    except LeaderUnreachable:
        answer = None
        if row.state not in FINISHED_STATES and wait > 0:
            await gw.cluster.watch.wait(call_id, wait)  # its end (NOTIFY): the output then is in the outcome
    else:
        if answer is None and row.state not in FINISHED_STATES and wait > 0:
            await gw.cluster.watch.wait(call_id, min(wait, NOT_YET_SECONDS))  # not taken by the leader yet
    if answer is not None:
        return answer
    return stored_answer(await stored_call(gw, who, call_id), after)


async def _printed(gw: Gateway, call_id: str, timeout: float) -> bool:
    """True once the leader holds output the call posted; False when it ended without, or no leader answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await asyncio.sleep(min(FIRST_POST_SECONDS, timeout))
    while (left := deadline - loop.time()) > 0:
        try:
            answer = await _leader_output(gw, call_id, 0, min(left, POLL_SECONDS))
        except LeaderUnreachable:
            return False
        if answer is None:
            await asyncio.sleep(min(NOT_YET_SECONDS, max(0.0, deadline - loop.time())))
        elif answer.get("text"):
            return True
        elif answer.get("finished"):
            return False
    return False


async def wait_done_or_printed(gw: Gateway, call_id: str, timeout: float) -> TaskItem | None:
    """``.remote`` on a follower for a caller that follows output: the ended call, or None once it has printed.

    ``TimeoutError`` when it neither ended nor printed within ``timeout``.
    """
    ended = asyncio.ensure_future(wait_stored(gw, call_id, timeout))
    printed = asyncio.ensure_future(_printed(gw, call_id, timeout))
    try:
        await asyncio.wait({ended, printed}, return_when=asyncio.FIRST_COMPLETED)
        if not ended.done() and printed.result():
            return None
        # Ended, or ended without printing, or no leader to read from: the outcome carries the output.
        finished = await ended
        if finished is None:
            raise TimeoutError
        return finished
    finally:
        for task in (ended, printed):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
