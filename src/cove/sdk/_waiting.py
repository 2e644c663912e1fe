"""A line on stderr when a call waits more than a second, saying why (no worker with room, a container starting).

``.remote`` and ``.map`` (and so ``cove run``) register the call here for as
long as it is out; registering is a dictionary write, so a call answered
within the second costs nothing else. One daemon thread looks twice a second
at the calls out for longer, asks the gateway why their deployment's work
waits (``GET /api/v1/deployments/{name}/waiting``, answered from memory) and
prints the reason when it changes. A call that runs its handler, or a
deployment with nothing holding it back, prints nothing.
``COVE_NO_PROGRESS=1`` turns the lines off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

QUIET_SECONDS = 1.0  # a call answered within this prints nothing
LOOK_EVERY_SECONDS = 0.5


class _Out:
    __slots__ = ("gateway", "name", "started", "token")

    def __init__(self, gateway: str, token: str | None, name: str) -> None:
        self.gateway = gateway
        self.token = token
        self.name = name
        self.started = time.monotonic()


_out: dict[int, _Out] = {}
_ids = itertools.count()
_said: dict[tuple[str, str], str | None] = {}  # (gateway, deployment) -> the last reason printed
_lock = threading.Lock()
_watcher: list[threading.Thread] = []


def enabled() -> bool:
    return not os.environ.get("COVE_NO_PROGRESS")


@contextlib.contextmanager
def watching(client: Any, name: str) -> Iterator[None]:
    """Tell the caller on stderr why ``name``'s work waits, while the block runs longer than a second."""
    if not enabled():
        yield
        return
    key = next(_ids)
    _out[key] = _Out(client.gateway, client.token, name)
    if not _watcher:
        _start()
    try:
        yield
    finally:
        _out.pop(key, None)


def _start() -> None:
    with _lock:
        if _watcher:
            return
        thread = threading.Thread(target=_watch_forever, name="cove-waiting", daemon=True)
        _watcher.append(thread)
        thread.start()


def _watch_forever() -> None:
    clients: dict[tuple[str, str | None], Any] = {}
    while True:
        time.sleep(LOOK_EVERY_SECONDS)
        now = time.monotonic()
        due = {(o.gateway, o.token, o.name) for o in list(_out.values()) if now - o.started >= QUIET_SECONDS}
        for gateway, deployment in list(_said):
            if not any(g == gateway and n == deployment for g, _, n in due):
                _said.pop((gateway, deployment), None)  # its calls ended: a later wait is news again
        for gateway, token, name in due:
            with contextlib.suppress(Exception):  # the line is a courtesy: never fail or slow the call
                reason = _reason(clients, gateway, token, name)
                if reason and _said.get((gateway, name)) != reason:
                    print(f"cove: {name} waits: {reason}", file=sys.stderr, flush=True)
                _said[(gateway, name)] = reason


def _reason(clients: dict[tuple[str, str | None], Any], gateway: str, token: str | None, name: str) -> str | None:
    from .client import Client

    client = clients.get((gateway, token))
    if client is None:
        client = clients[(gateway, token)] = Client(gateway, token, timeout=5)
    answer = client.request("GET", f"/api/v1/deployments/{quote(name, safe='')}/waiting")
    reason = answer.get("reason")
    return str(reason) if reason else None
