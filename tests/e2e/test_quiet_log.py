"""An idle server's log: a minute of it holds no line about the worker's routine heartbeats and order polls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import start_server

IDLE_SECONDS = 60


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_minute_of_idle_log_has_no_heartbeat_or_order_poll_lines(tmp_path: Path) -> None:
    server = start_server(tmp_path / "cove")
    try:
        log = server.home / "test-server.log"
        start = log.stat().st_size
        time.sleep(IDLE_SECONDS)
        lines = log.read_bytes()[start:].decode(errors="replace").splitlines()
    finally:
        server.stop()
    messages = [json.loads(line).get("message", "") if line.startswith("{") else line for line in lines]
    noisy = [m for m in messages if "/heartbeat" in m or "/orders" in m]
    assert noisy == [], noisy[:5]
    assert len(lines) < 10, lines  # the idle minute says next to nothing
