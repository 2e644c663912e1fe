"""What the gateway tells a web app's container about each request, beyond the request itself.

A request to ``/asgi/{name}/...`` reaches the container as the same HTTP
request (its full path, method, headers and body), plus these headers, which
the runner takes off again and puts into the ASGI scope. The gateway removes
any header of the caller's that starts with ``x-cove-``, so a caller cannot
pretend to be the gateway.
"""

from __future__ import annotations

PRIVATE_PREFIX = b"x-cove-"
# The prefix the app is mounted at (``/asgi/NAME`` or ``/asgi/NAME/vN``): the scope's ``root_path``.
ROOT_PATH = b"x-cove-root-path"
# The caller's address as the gateway saw it, ``host:port``: the scope's ``client``.
CLIENT = b"x-cove-client"
# ``http`` or ``https``, as the caller reached the gateway: the scope's ``scheme`` (``ws``/``wss`` for a WebSocket).
SCHEME = b"x-cove-scheme"
