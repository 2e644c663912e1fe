"""``cove server --drain-seconds``: after SIGTERM the gateway keeps answering, each response closing its
connection, so a client behind a load balancer moves to another gateway instead of losing a request on a
kept-alive connection that the stopping gateway closed under it."""

from __future__ import annotations

import http.client
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

from conftest import start_server

DRAIN = 4.0


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str | None]:
    conn.request("GET", path)
    answer = conn.getresponse()
    answer.read()
    return answer.status, answer.getheader("connection")


def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", None, None, "--drain-seconds", f"{DRAIN:g}")
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    try:
        kept = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        assert _get(kept, "/healthz") == (200, None)  # kept alive before the signal
        t_signal = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # The connection held from before still answers, and says it closes.
        status, connection = _get(kept, "/healthz")
        assert (status, (connection or "").lower()) == (200, "close")
        # A new connection (a balancer that has not yet dropped this gateway) is served too, and told to close.
        fresh = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        status, connection = _get(fresh, "/healthz")
        assert (status, (connection or "").lower()) == (200, "close")
        assert server.proc.poll() is None and time.monotonic() - t_signal < DRAIN
        # Then it stops on its own, not long after the drain time.
        server.proc.wait(timeout=DRAIN + 20)
        assert time.monotonic() - t_signal >= DRAIN
    finally:
        server.stop()


def test_without_a_drain_time_sigterm_stops_at_once(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        t_signal = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=20)
        assert time.monotonic() - t_signal < DRAIN
    finally:
        server.stop()


def test_a_bad_drain_time_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cove", "server", "--home", str(tmp_path), "--drain-seconds", "-1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--drain-seconds must be from 0 to 3600" in done.stdout + done.stderr
