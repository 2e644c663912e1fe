"""A successful heartbeat or order poll writes no log line; a failed one, and every other request, still does."""

from __future__ import annotations

import logging

import httpx

from cove.server.poll_noise import PollNoiseFilter


def _record(method: str, url: str, status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
        (method, httpx.URL(url), "HTTP/1.1", status, "OK"), None,
    )  # fmt: skip


def test_routine_polls_are_dropped_unless_they_fail() -> None:
    keep = PollNoiseFilter().filter
    base = "http://127.0.0.1:8474/api/v1/workers/wrk-1"
    assert not keep(_record("POST", f"{base}/heartbeat", 200))
    assert not keep(_record("GET", f"{base}/orders?wait=25", 200))
    assert keep(_record("POST", f"{base}/heartbeat", 404))
    assert keep(_record("GET", f"{base}/orders?wait=25", 503))
    assert keep(_record("POST", f"{base}/events", 200))
    assert keep(_record("POST", "http://127.0.0.1:8474/api/v1/workers/register", 200))
    assert keep(logging.LogRecord("httpx", logging.INFO, __file__, 1, "no arguments", None, None))
