"""Where a local gateway listens on a unix socket, for the containers of this machine.

Containers have no network, so code inside one reaches the gateway through
this socket, bind-mounted into it. The socket sits alone in its folder
(the folder is what gets mounted), under the Cove home, or under the temp
folder when that path would be too long for a unix socket.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
SOCKET_NAME = "gateway.sock"


def gateway_socket_path(home_root: Path) -> Path:
    preferred = home_root / "gateway" / SOCKET_NAME
    if len(os.fsencode(preferred)) <= UNIX_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(home_root)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cove-gateway-{digest}" / SOCKET_NAME


def prepare_socket_folder(path: Path) -> None:
    """Create the socket's folder (searchable by containers' unprivileged users) and drop a stale socket."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.unlink(missing_ok=True)
