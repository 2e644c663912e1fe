"""Relayed requests' deadlines (``cove.gateway._deadlines``): shared timers, ``asyncio.timeout_at``'s behaviour.

A deadline in the same ``GRAIN`` as another joins its timer instead of arming
one, fires no earlier than asked and at most a grain late, turns the task's
cancellation into ``TimeoutError`` only when it caused it, and leaves nothing
behind when the request ends first. Run under uvloop, as the gateway runs.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from cove.gateway._deadlines import GRAIN, Deadlines


def test_a_deadline_that_passes_is_a_timeout_error_no_earlier_than_asked() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        when = loop.time() + 0.05
        with pytest.raises(TimeoutError), deadlines.at(when):
            await asyncio.sleep(5)
        return when, loop.time()

    when, ended = uvloop.run(main())
    assert when <= ended < when + GRAIN + 0.05  # the timer's own lateness under load aside


def test_requests_in_one_grain_share_a_timer_and_leave_nothing_behind() -> None:
    async def main() -> tuple[int, int, list[str]]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        when = loop.time() + 0.2
        started = asyncio.Event()
        done = asyncio.Event()

        async def request(i: int) -> str:
            with deadlines.at(when):
                if i == 9:
                    started.set()
                await done.wait()
            return "answered"

        tasks = [asyncio.create_task(request(i)) for i in range(10)]
        await started.wait()
        armed = deadlines.pending()
        done.set()
        answers = await asyncio.gather(*tasks)
        await asyncio.sleep(0.25)  # the shared timer fires and finds no one
        return armed, deadlines.pending(), answers

    armed, left, answers = uvloop.run(main())
    assert armed == 1
    assert left == 0
    assert answers == ["answered"] * 10


def test_only_the_requests_past_their_deadline_time_out() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()

        async def request(timeout: float) -> str:
            try:
                with deadlines.at(loop.time() + timeout):
                    await asyncio.sleep(0.15)
            except TimeoutError:
                return "timed out"
            return "answered"

        return list(await asyncio.gather(request(0.02), request(1.0), request(0.05), request(5.0)))

    assert uvloop.run(main()) == ["timed out", "answered", "timed out", "answered"]


def test_a_cancelled_request_stays_cancelled() -> None:
    """A cancellation the deadline did not cause is not turned into a timeout (the client went away)."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()

        async def request() -> str:
            with deadlines.at(loop.time() + 5):
                await asyncio.sleep(5)
            return "answered"

        task = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    assert uvloop.run(main()) == "cancelled"


def test_no_deadline_never_times_out_and_a_past_one_at_once() -> None:
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        with deadlines.at(None):
            await asyncio.sleep(0.03)
        try:
            with deadlines.at(loop.time() - 1):
                await asyncio.sleep(1)
        except TimeoutError:
            return "kept", "timed out"
        return "kept", "answered"

    assert uvloop.run(main()) == ("kept", "timed out")


def test_a_new_loop_does_not_join_a_closed_loops_timers() -> None:
    """A server restarted in one process (tests do) gets timers of its own loop."""
    deadlines = Deadlines()

    async def first() -> None:
        deadlines.at(asyncio.get_running_loop().time() + 0.05).__enter__()  # a timer armed, its loop then closed

    async def second() -> str:
        try:
            with deadlines.at(asyncio.get_running_loop().time() + 0.05):
                await asyncio.sleep(1)
        except TimeoutError:
            return "timed out"
        return "answered"

    uvloop.run(first())
    assert uvloop.run(second()) == "timed out"
