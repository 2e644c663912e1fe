"""Listening sockets that the worker creates before a container exists.

Creating the socket on the host, before the process starts, is what lets the
gateway connect at once: its request waits in the kernel backlog while the
runner boots, and no readiness probe sits on the request path.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

UNIX_PATH_MAX = 107  # sun_path holds 108 bytes including the terminating NUL
BACKLOG = 1024


def open_unix_listener(path: Path, backlog: int = BACKLOG) -> socket.socket:
    """Bind and listen on a unix socket at ``path`` (mode 0600), replacing a stale file."""
    raw = os.fsencode(path)
    if len(raw) > UNIX_PATH_MAX:
        raise ValueError(f"unix socket path is {len(raw)} bytes, longer than {UNIX_PATH_MAX}: {path}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(raw)
        os.chmod(raw, 0o600)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
