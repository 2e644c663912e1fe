"""The ASGI lifespan protocol: the app's startup before the container reports ready, its shutdown after the drain.

An app that does not speak the protocol (it raises on the ``lifespan`` scope,
or returns, before answering) is served without it, as uvicorn's default
``auto`` mode does. An app that reports ``lifespan.startup.failed`` (as
Starlette and FastAPI do when a startup handler raises) fails the container
start: it exits with the user-code status and the reason in its log.
"""

from __future__ import annotations

import asyncio
import sys

from cove.runner._asgi_http import report_failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ASGI = {"version": "3.0", "spec_version": "2.0"}


class LifespanFailed(Exception):
    """The app's startup failed; the message says how."""


class Lifespan:
    """Runs the app's lifespan task; ``state`` is what it left for every request's scope."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.state: dict[str, Any] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run the app's startup; ``LifespanFailed`` when it fails."""
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        self._task = asyncio.ensure_future(self._app(scope, self._events.get, self._answers.put))
        await self._events.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            failure = self._task.exception()
            if failure is not None:
                print(
                    f"cove: the app does not run the ASGI lifespan protocol ({type(failure).__name__}: {failure}); "
                    "serving it without",
                    file=sys.stderr,
                )
            return
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(answer.get("message") or "the app's lifespan startup failed")
        if answer["type"] != "lifespan.startup.complete":
            raise LifespanFailed(f"unexpected lifespan message {answer['type']!r}")

    async def shutdown(self) -> None:
        """Run the app's shutdown; a failure is reported, the container stops either way."""
        if self._task is None or self._task.done():
            return
        await self._events.put({"type": "lifespan.shutdown"})
        answer = await self._answer()
        if answer is None and self._task.exception() is not None:
            report_failure(self._task.exception())  # type: ignore[arg-type]
        elif answer is not None and answer["type"] == "lifespan.shutdown.failed":
            print(f"cove: the app's lifespan shutdown failed: {answer.get('message') or ''}", file=sys.stderr)

    async def _answer(self) -> dict[str, Any] | None:
        """The app's next lifespan message; None when its task ended without one."""
        assert self._task is not None
        waiting = asyncio.ensure_future(self._answers.get())
        await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        return None
