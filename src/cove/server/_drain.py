"""Draining on SIGTERM: keep serving for a while, telling each client to reconnect, then stop.

A load balancer in front of the gateway (a Kubernetes Service's kube-proxy
rules, an ingress) keeps sending new connections for a moment after the pod is
told to stop, and clients keep reusing the connections they hold open to it.
uvicorn's shutdown stops listening and closes idle kept-alive connections at
once, so a request already on its way over such a connection is lost: the
client sees "server disconnected without sending a response". While draining,
the gateway answers everything as usual but ends each response with
``Connection: close``, so every client's next request opens a new connection,
which the balancer sends to a gateway that stays. Then the usual graceful
shutdown runs: in-flight requests finish, the lease is handed over.

A second SIGTERM, or SIGINT (Ctrl-C), stops at once. With no drain time
(the default) SIGTERM stops at once too, as before.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Final

log = logging.getLogger("cove.server")


class DrainState:
    """Whether this process is draining; read by the HTTP protocol once per request."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False


DRAINING: Final = DrainState()
"""This process's drain state: one gateway (and its companion listeners) per process."""


def on_signal(sig: int, drain_seconds: float, stop: Callable[[int], None]) -> bool:
    """Handle a stop signal; whether to stop now (else ``stop(sig)`` is called after the drain time).

    ``stop`` is the server's own exit handler, called with the signal once the drain time has passed.
    """
    if sig != signal.SIGTERM or drain_seconds <= 0 or DRAINING.active:
        return True
    DRAINING.active = True
    log.info("SIGTERM: draining for %gs (responses say Connection: close), then stopping", drain_seconds)
    loop = asyncio.get_event_loop()
    loop.call_soon_threadsafe(loop.call_later, drain_seconds, stop, sig)
    return False
