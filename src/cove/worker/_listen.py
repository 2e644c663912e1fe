"""The listening socket a container gets as fd 3, and the address the gateway reaches it at.

A worker beside the gateway uses a unix socket in its run folder. A worker on
another host (one started with ``--advertise-host``) binds a TCP port on that
address instead, so gateways connect straight to the container; the
container itself still needs no network, since the socket is made out here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from ..runtime import BACKLOG, open_unix_listener

Listen = Callable[[Path], tuple[socket.socket, str]]


def unix_listener(path: Path) -> tuple[socket.socket, str]:
    return open_unix_listener(path), f"unix:{path}"


def tcp_listener(host: str) -> Listen:
    """A ``Listen`` that binds a free TCP port on ``host`` and reports ``tcp:host:port``."""

    def listen(_path: Path) -> tuple[socket.socket, str]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host.strip("[]"), 0))
            sock.listen(BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock, f"tcp:{host}:{sock.getsockname()[1]}"

    return listen
