"""A background task that lives as long as a block: the gateway's routers start theirs in their lifespans."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def running(task: asyncio.Task[None]) -> AsyncIterator[None]:
    """Yield while ``task`` runs; cancel it and wait for it to end when the block ends."""
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
