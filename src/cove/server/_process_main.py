"""One gateway process of ``cove server --processes N`` (started by its supervisor, never by hand)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import uvloop

from cove._host.home import Home
from cove.gateway import GatewaySettings, create_app

from . import json_logs
from ._front import open_front
from ._launch import _GatewayServer, _settle_garbage_collector, gateway_config
from ._processes import CHILD_ENV, ProcessSpec, advertised, private_socket, shared_port_socket


async def serve(spec: ProcessSpec) -> None:
    """Serve the shared port, this process's own port and the shared unix socket until SIGTERM."""
    public = shared_port_socket(spec.host, spec.port)
    own = private_socket(spec.host)
    os.environ["COVE_ADVERTISE_URL"] = advertised(spec.host, own.getsockname()[1])
    uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=spec.uds_fd)
    gateway = GatewaySettings(
        home=Home(Path(spec.home)),
        database_url=spec.database_url,
        public_url=spec.public_url,
        index_url=spec.index_url,
        python_env_roots=tuple(Path(p) for p in spec.python_env_roots),
    )
    app = create_app(gateway)
    server = _GatewayServer(gateway_config(app), spec.drain_seconds)
    # With the native front, it holds this process's share of the public port and hands the rest here.
    sockets = [own, uds] if spec.front_binary else [public, own, uds]
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if spec.front_binary and not serving.done():
        await open_front(Path(spec.front_binary), public, server, app.api.state.gateway)
    _settle_garbage_collector()
    await serving


def main() -> None:
    raw = os.environ.get(CHILD_ENV)
    if not raw:
        raise SystemExit(f"this module is started by `cove server --processes N` (it sets {CHILD_ENV})")
    json_logs.setup()
    uvloop.run(serve(ProcessSpec.from_env(raw)))


if __name__ == "__main__":
    main()
