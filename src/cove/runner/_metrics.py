"""The handler's own ``prometheus_client`` metrics, sent to the gateway, which exposes them on ``/metrics``.

Only when the user's code imported ``prometheus_client``: then one daemon
thread renders the default registry every ``PUSH_EVERY_SECONDS`` and posts
it to ``/api/v1/containers/{id}/metrics`` when it changed (and at least every
``REFRESH_SECONDS``, so the gateway knows the container still lives). The
container's last values are posted once more when it stops, so counters and
histograms outlive the container until Prometheus scrapes them. Posting never
slows a call: it happens on that thread, and a failure is forgotten until
the next turn.
"""

from __future__ import annotations

import sys
import threading
import time

PUSH_EVERY_SECONDS = 1.0
REFRESH_SECONDS = 60.0


class _Pusher:
    def __init__(self, container_id: str) -> None:
        self.path = f"/api/v1/containers/{container_id}/metrics"
        self.last = b""
        self.sent_at = 0.0
        self.lock = threading.Lock()

    def push(self, force: bool = False) -> None:
        from prometheus_client import REGISTRY, generate_latest

        from cove.runner._gateway_http import GatewayError, request

        with self.lock:
            text = generate_latest(REGISTRY)
            now = time.monotonic()
            if text == self.last and not force and now - self.sent_at < REFRESH_SECONDS:
                return
            try:
                request("POST", self.path, text, content_type="text/plain; version=0.0.4", timeout=5)
            except GatewayError:
                return  # the next turn tries again
            self.last, self.sent_at = text, now

    def forever(self) -> None:
        while True:
            time.sleep(PUSH_EVERY_SECONDS)
            try:
                self.push()
            except Exception:  # a metric that fails to render must not end the pushing of the others
                continue


_pusher: list[_Pusher] = []


def start(container_id: str) -> None:
    """Start pushing if the user's code uses ``prometheus_client`` and the container can reach its gateway."""
    from cove.runner._gateway_http import reachable

    if "prometheus_client" not in sys.modules or not container_id or not reachable():
        return
    pusher = _Pusher(container_id)
    _pusher.append(pusher)
    threading.Thread(target=pusher.forever, name="cove-metrics", daemon=True).start()


def push_last() -> None:
    """The container stops: send its final values (what the last turn did not send yet)."""
    for pusher in _pusher:
        try:
            pusher.push(force=True)
        except Exception:
            return
