"""The stop shared by the dashboard's open change streams (``GET /api/v1/changes``)."""

from __future__ import annotations

import asyncio


class ChangeFeed:
    """Set when the server shuts down: every open change stream ends, so none holds the shutdown back."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def end(self) -> None:
        self.ended.set()
