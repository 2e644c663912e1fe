"""Keeps the workers' routine polls out of the log: successful heartbeats and order polls are not news.

A worker sends a heartbeat every few seconds and holds a long poll for
orders open all the time; httpx logs each request at info level, so an idle
server's log used to be mostly these lines. Each successful one is dropped
here; a failed one (an error status) is kept, because that is news.
"""

from __future__ import annotations

import logging
import re

# The worker API's routine paths: /api/v1/workers/{id}/heartbeat and /api/v1/workers/{id}/orders.
ROUTINE_PATH = re.compile(r"/api/v1/workers/[^/]+/(heartbeat|orders)$")
HTTPX_LOGGER = "httpx"


class PollNoiseFilter(logging.Filter):
    """Drops httpx's "HTTP Request" line of a successful heartbeat or order poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 4 or not isinstance(args[3], int):
            return True
        url = getattr(args[1], "path", None)
        if not isinstance(url, str) or not ROUTINE_PATH.search(url):
            return True
        return not 200 <= args[3] < 300


def install() -> None:
    """Filter httpx's request lines in this process (idempotent)."""
    logger = logging.getLogger(HTTPX_LOGGER)
    if not any(isinstance(f, PollNoiseFilter) for f in logger.filters):
        logger.addFilter(PollNoiseFilter())
