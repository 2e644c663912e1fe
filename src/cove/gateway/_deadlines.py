"""Request deadlines that share their timers.

``asyncio.timeout_at`` arms a timer of its own for every request and cancels
it when the request ends; under uvloop each is a libuv timer started and
stopped, about a tenth of a relayed request's CPU time in the gateway. Yet
thousands of requests a second with the same timeout end within milliseconds
of each other. Here a deadline is rounded up to the next ``GRAIN`` and the
requests whose deadlines round to the same instant share one timer: entering
and leaving a deadline is a set insert and a removal, and a timer is armed at
most once per ``GRAIN``.

A deadline fires at most ``GRAIN`` late and never early, and behaves as
``asyncio.timeout_at`` does otherwise: the request's task is cancelled, and
the cancellation leaves the block as ``TimeoutError`` unless the task was also
cancelled for another reason. A request served in callbacks, with no task
(``_express``), is watched instead: its ``expire`` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Protocol

GRAIN = 0.01  # seconds: how late a deadline may fire, and how often a shared timer may be armed
_NEVER: contextlib.nullcontext[None] = contextlib.nullcontext()  # no deadline: reusable, it holds no state


class Expiring(Protocol):
    """What a deadline's timer calls when the instant ``key`` (in GRAINs of loop time) has passed."""

    key: int

    def expire(self) -> None: ...


class Deadlines:
    """The deadlines of one event loop's requests, in buckets of ``GRAIN`` that each have one timer."""

    __slots__ = ("_buckets", "_loop")

    def __init__(self) -> None:
        self._buckets: dict[int, set[Expiring]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def at(self, when: float | None) -> Deadline | contextlib.nullcontext[None]:
        """A context that times the current task out at loop time ``when`` (None: never), as ``asyncio.timeout_at``."""
        return _NEVER if when is None else Deadline(self, int(when / GRAIN) + 1)

    def watch(self, when: float, expiring: Expiring) -> None:
        """Call ``expiring.expire()`` once loop time ``when`` has passed, unless :meth:`unwatch` came first.

        Sets ``expiring.key``, which :meth:`unwatch` reads.
        """
        expiring.key = int(when / GRAIN) + 1
        self._join(expiring)

    def unwatch(self, expiring: Expiring) -> None:
        self._leave(expiring)

    def pending(self) -> int:
        """How many timers are armed now (one for each instant that has a request's deadline)."""
        return len(self._buckets)

    def _join(self, deadline: Expiring) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another loop's timers (a server restarted in one process) never fire here
            self._buckets.clear()
            self._loop = loop
        bucket = self._buckets.get(deadline.key)
        if bucket is None:
            bucket = self._buckets[deadline.key] = set()
            loop.call_at(deadline.key * GRAIN, self._expire, deadline.key)
        bucket.add(deadline)

    def _leave(self, deadline: Expiring) -> None:
        bucket = self._buckets.get(deadline.key)
        if bucket is not None:
            bucket.discard(deadline)

    def _expire(self, key: int) -> None:
        for deadline in self._buckets.pop(key, ()):
            deadline.expire()


class Deadline:
    """One request's deadline: a ``with`` block around the awaits it bounds."""

    __slots__ = ("_cancelling", "_deadlines", "_task", "expired", "key")

    def __init__(self, deadlines: Deadlines, key: int) -> None:
        self._deadlines = deadlines
        self.key = key  # the deadline in GRAINs of loop time, rounded up
        self.expired = False

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline bounds the awaits of a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines._join(self)
        return self

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._deadlines._leave(self)
        if (
            self.expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            raise TimeoutError from exc
