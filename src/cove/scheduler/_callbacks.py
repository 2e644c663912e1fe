"""``callback_url``: each finished task's outcome is POSTed there, in the background, with retries.

Delivery never holds up dispatch: outcomes queue here and go out on their
own tasks; a receiver that is down gets the same payload again with
exponential backoff, then the failure is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx

log = logging.getLogger("cove.scheduler.callbacks")


class CallbackSender:
    def __init__(self, attempts: int = 5, first_delay: float = 0.5, concurrency: int = 16) -> None:
        self.attempts = attempts
        self.first_delay = first_delay
        self._limit = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        body = json.dumps(payload).encode()
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._limit:
                    response = await self._client.post(url, content=body, headers={"Content-Type": "application/json"})
                if response.status_code < 300:
                    return
                problem = f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning(
            "callback for task %s to %s failed %d times: %s", payload.get("task_id"), url, self.attempts, problem
        )

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
