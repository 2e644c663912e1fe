"""Defaults that several front ends share: where the gateway listens, and which container engine runs.

The SDK, the CLI, ``cove server``, the gateway and the worker all read these
from here, so a front end cannot drift to a port or an engine of its own
(``python -m cove.worker`` once defaulted to port 8000 and to no isolation).
Only the standard library is imported: the SDK and the worker import this
module without pulling in any server dependency.
"""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
"""The address ``cove server`` listens on: this machine only, until the operator says otherwise."""

DEFAULT_PORT: Final = 8474
"""The gateway's TCP port."""

DEFAULT_DRAIN_SECONDS: Final = 0.0
"""How long ``cove server`` keeps serving after SIGTERM (``--drain-seconds``, ``cove.server._drain``): none unless
the operator asks, so a stop on one machine is immediate."""

DEFAULT_RUNTIME: Final = "auto"
"""The container engine of ``cove server``'s and ``cove worker``'s workers: the best isolation that works here
(crun, else runc, else the unisolated process engine, with a warning; see :func:`cove.runtime.select_runtime`)."""


def default_gateway_url() -> str:
    """The URL a client, a worker or ``cove server`` itself uses for a gateway nobody named."""
    return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
