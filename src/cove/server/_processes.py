"""``cove server --processes N``: N gateway processes on one port, so one machine's gateway uses its cores.

Each process is a whole gateway of the cluster (its own ``Cluster`` identity:
one of them may lead, the others follow and serve the data plane
themselves). Each binds the public port with ``SO_REUSEPORT``, so the kernel
spreads connections over them, and a private port of its own that it
advertises to the other gateways (``COVE_ADVERTISE_URL``): forwarding to "the
leader" must reach that one process, not whichever the shared port picks.
The unix socket for this machine's containers is made once, here, and shared
by every process.

This process only supervises: it prepares the store, holds the home's lock,
runs the local worker, and restarts a gateway process that exits (a leader
that lost its lease exits on purpose, to come back as a follower).

Several processes need PostgreSQL: on SQLite a gateway leads alone (no lease
decides between processes), so the CLI refuses ``--processes`` > 1 there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

from cove._wire.server_defaults import DEFAULT_DRAIN_SECONDS

log = logging.getLogger("cove.server")

CHILD_ENV = "COVE_SERVER_PROCESS"  # the settings of one gateway process, as JSON (see ``ProcessSpec``)
RESTART_BACKOFF_SECONDS = (0.5, 30.0)


def needs_postgres(database_url: str, processes: int) -> str | None:
    """Why ``processes`` gateway processes cannot run on this store, or None."""
    if processes > 1 and database_url.startswith("sqlite"):
        return (
            f"--processes {processes} needs PostgreSQL (set COVE_DATABASE_URL=postgresql+asyncpg://...): "
            "on SQLite one gateway process leads alone and holds the store"
        )
    return None


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """What one gateway process needs to serve (handed over in ``CHILD_ENV``)."""

    home: str
    host: str
    port: int
    public_url: str
    database_url: str
    index_url: str | None
    python_env_roots: tuple[str, ...]
    index: int
    uds_fd: int  # the shared unix socket, inherited under this descriptor number
    drain_seconds: float = DEFAULT_DRAIN_SECONDS  # serving on after SIGTERM (``_drain``)
    front_binary: str = ""  # the built native front (``_front``) that holds this process's share of the port, or ""

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, raw: str) -> ProcessSpec:
        data = json.loads(raw)
        data["python_env_roots"] = tuple(data["python_env_roots"])
        return cls(**data)


def shared_port_socket(host: str, port: int) -> socket.socket:
    """The public port, bound once per process with ``SO_REUSEPORT``: the kernel spreads connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def private_socket(host: str) -> socket.socket:
    """A port of this process alone, for the other gateways (forwarding to the leader, demand reports)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def advertised(host: str, port: int) -> str:
    """This process's own URL: the host others use (``COVE_ADVERTISE_URL``'s, else the listening one), its port."""
    given = os.environ.get("COVE_ADVERTISE_URL")
    name = urlsplit(given).hostname if given else None
    if not name:
        name = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{name}]' if ':' in name else name}:{port}"


def _die_with_parent() -> None:
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class GatewayProcesses:
    """N gateway processes, each restarted when it exits, until ``stop``."""

    def __init__(self, specs: list[ProcessSpec], uds: socket.socket) -> None:
        self.specs = specs
        self.uds = uds
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn(spec) for spec in specs]
        self.restarts = 0
        self._stopping = False

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        env = {**os.environ, CHILD_ENV: spec.to_env()}
        os.set_inheritable(self.uds.fileno(), True)
        return subprocess.Popen(
            [sys.executable, "-m", "cove.server._process_main"],
            env=env,
            pass_fds=(self.uds.fileno(),),
            preexec_fn=_die_with_parent,
        )

    async def supervise(self) -> None:
        """Restart any process that exits, after a pause that grows while it keeps failing."""
        backoff = [RESTART_BACKOFF_SECONDS[0]] * len(self.specs)
        started = [time.monotonic()] * len(self.specs)
        while not self._stopping:
            await asyncio.sleep(0.25)
            for i, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None or self._stopping:
                    continue
                if time.monotonic() - started[i] > 30:
                    backoff[i] = RESTART_BACKOFF_SECONDS[0]
                log.warning("gateway process %d (pid %d) exited with code %s; restarting it", i, proc.pid, code)
                await asyncio.sleep(backoff[i])
                backoff[i] = min(backoff[i] * 2, RESTART_BACKOFF_SECONDS[1])
                if not self._stopping:
                    self.procs[i] = self._spawn(self.specs[i])
                    started[i] = time.monotonic()
                    self.restarts += 1

    def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20 + max(spec.drain_seconds for spec in self.specs))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_until_serving(url: str, procs: GatewayProcesses, timeout: float = 120) -> None:
    """Until the shared port answers ``/healthz``; fails if every process has exited meanwhile."""
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            if all(proc.poll() is not None for proc in procs.procs):
                raise RuntimeError(f"the gateway processes could not start on {url} (is the port in use?)")
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway processes did not answer on {url} within {timeout:g} s")
