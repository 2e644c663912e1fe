"""``cove server``: gateway, scheduler and a local worker on one machine.

The local worker is a separate process that joins over HTTP with a token of
its own, exactly as a worker on another host would, so a single machine runs
the same protocol a cluster does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from cove._host.home import Home, HomeLock
from cove._host.python_envs import ROOTS_ENV, roots_env_value, roots_from_env
from cove._net.gateway_socket import gateway_socket_path, prepare_socket_folder
from cove._wire.server_defaults import DEFAULT_DRAIN_SECONDS, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_RUNTIME
from cove.gateway import GatewaySettings, check_cluster_key, create_app, load_key
from cove.store import Store, sqlite_url
from cove.worker import detect_capacity

from ._drain import on_signal
from ._front import NativeFront, build, open_front
from ._http_protocol import GatewayHttpProtocol

log = logging.getLogger("cove.server")

# Seconds the native front has, when the gateway stops, to finish the calls it relays before it is ended.
FRONT_STOP_SECONDS = 10.0
# Objects allocated before a young collection runs (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    home: Home
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_url: str | None = None
    local_worker: bool = True
    worker_cpu_millis: int = 0
    worker_memory_mib: int = 0
    index_url: str | None = None
    use_reservoir: bool = False
    runtime: str = DEFAULT_RUNTIME
    # Folders under which images may name an existing environment (python_env); given to the gateway and worker.
    python_env_roots: tuple[Path, ...] = dataclasses.field(default_factory=roots_from_env)
    processes: int = 1  # gateway processes on the one port (more than one needs PostgreSQL)
    drain_seconds: float = DEFAULT_DRAIN_SECONDS  # serving on after SIGTERM, each response closing its connection
    native_front: bool = False  # warm endpoint calls served by cove-front (``_front``), one per gateway process

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def build_index_url(self) -> str | None:
        """The only package index image builds may use, if one is configured."""
        if self.use_reservoir:
            return f"{self.url}/reservoir/simple/"
        return self.index_url or os.environ.get("COVE_RESERVOIR_URL") or os.environ.get("COVE_INDEX_URL") or None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or os.environ.get("COVE_DATABASE_URL") or sqlite_url(self.home.database)


LOCAL_WORKER_NAME = "local"
LOCAL_WORKER_TOKEN = "local-worker"


async def prepare_store(settings: ServerSettings, echo: Callable[[str], None]) -> str | None:
    """Migrate, check the secret key against the cluster's, create the default workspace and admin token,
    and a token for the local worker (if it runs)."""
    store = Store(settings.resolved_database_url)
    try:
        await store.migrate()
        await check_cluster_key(store, load_key(settings.home.root))
        # Under the Helm chart the admin token comes from a Secret, so every gateway and the operator know it.
        secret = await store.bootstrap(admin_secret=os.environ.get("COVE_ADMIN_TOKEN") or None)
        if secret:
            _save_admin_token(settings.home, secret, echo)
        if not settings.local_worker:
            return None
        return await _local_worker_token(store, settings.home.worker_identity(LOCAL_WORKER_NAME))
    finally:
        await store.close()


def _save_admin_token(home: Home, secret: str, echo: Callable[[str], None]) -> None:
    """Keep the new admin token in the home (0600); show it only on a terminal, never in a log file."""
    path = home.admin_token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    shown = f":\n  {secret}" if sys.stdout.isatty() else ""
    echo(f"Created workspace 'default' and an admin token (saved to {path}, mode 0600){shown}")


async def _local_worker_token(store: Store, identity: str) -> str:
    """A fresh token bound to this home's local worker, replacing the one its previous run had.

    Only that worker's earlier tokens (and unbound ones of older versions) are
    revoked: servers of other homes on the same database keep theirs.
    """
    ws = await store.get_workspace("default")
    for token in await store.list_tokens(ws.id):
        stale = token.worker_identity in (None, identity)
        if token.name == LOCAL_WORKER_TOKEN and token.revoked_at is None and stale:
            with contextlib.suppress(Exception):
                await store.revoke_token_by_id(token.id)
    _, secret = await store.create_token("default", LOCAL_WORKER_TOKEN, role="worker", worker_identity=identity)
    return secret


def _quiet_migrations() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _local_worker_capacity(settings: ServerSettings) -> tuple[int, int]:
    """What the local worker offers: this machine's cores and memory, unless ``--worker-cpu`` says otherwise.

    Offering more cpu than the machine has (overcommit) is the operator's explicit choice, never the default:
    an advertised core that does not exist lets containers be placed that then starve each other.
    """
    cpu, memory = detect_capacity()  # what `cove worker` offers by default, too
    return settings.worker_cpu_millis or cpu, settings.worker_memory_mib or memory


async def run(settings: ServerSettings, echo: Callable[[str], None]) -> None:
    """Serve until stopped, holding the home all along: a second server started on it fails at once."""
    lock = HomeLock(settings.home)
    lock.acquire(pid=os.getpid(), port=settings.port, url=settings.url, shared=_shares_home(settings))
    try:
        if settings.processes > 1:
            await _serve_processes(settings, echo)
        else:
            await _serve(settings, echo)
    finally:
        lock.release()


async def _serve_processes(settings: ServerSettings, echo: Callable[[str], None]) -> None:
    """``--processes N``: prepare once, then supervise N gateway processes on the port (see ``_processes``)."""
    from ._processes import GatewayProcesses, ProcessSpec, needs_postgres, wait_until_serving

    refusal = needs_postgres(settings.resolved_database_url, settings.processes)
    if refusal:
        raise RuntimeError(refusal)
    settings.home.ensure()
    _quiet_migrations()
    worker_token = await prepare_store(settings, echo)
    socket_path = gateway_socket_path(settings.home.root)
    prepare_socket_folder(socket_path)
    socket_path.unlink(missing_ok=True)
    uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    uds.bind(str(socket_path))
    os.chmod(socket_path, 0o666)
    uds.listen(4096)
    front_binary = await asyncio.to_thread(build, settings.home.root / "bin") if settings.native_front else None
    specs = [
        ProcessSpec(
            home=str(settings.home.root),
            host=settings.host,
            port=settings.port,
            public_url=settings.url,
            database_url=settings.resolved_database_url,
            index_url=settings.build_index_url,
            python_env_roots=tuple(str(p) for p in settings.python_env_roots),
            index=i,
            uds_fd=uds.fileno(),
            drain_seconds=settings.drain_seconds,
            front_binary=str(front_binary or ""),
        )
        for i in range(settings.processes)
    ]
    procs = GatewayProcesses(specs, uds)
    supervisor: LocalWorker | None = None
    watching: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await wait_until_serving(settings.url, procs)
        info = {"url": settings.url, "pid": os.getpid(), "socket": str(socket_path)}
        settings.home.server_info.write_text(json.dumps(info))
        if worker_token is not None:
            supervisor = LocalWorker(settings, worker_token)
            watching.append(asyncio.create_task(supervisor.supervise()))
        watching.append(asyncio.create_task(procs.supervise()))
        pids = ", ".join(str(p.pid) for p in procs.procs)
        echo(
            f"Cove is serving on {settings.url} with {settings.processes} gateway processes (pids {pids}); "
            f"home {settings.home.root}; Ctrl-C stops it"
        )
        await stop.wait()
    finally:
        for task in watching:
            task.cancel()
        if supervisor is not None:
            await asyncio.to_thread(supervisor.stop)
        await asyncio.to_thread(procs.stop)
        uds.close()
        socket_path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            info = json.loads(settings.home.server_info.read_text())
            if info.get("pid") == os.getpid():
                settings.home.server_info.unlink()


def _shares_home(settings: ServerSettings) -> bool:
    """Gateways of one cluster (PostgreSQL, no local worker) may share a home; any other server holds it alone."""
    return not settings.local_worker and not settings.resolved_database_url.startswith("sqlite")


async def _serve(settings: ServerSettings, echo: Callable[[str], None]) -> None:
    settings.home.ensure()
    _quiet_migrations()
    worker_token = await prepare_store(settings, echo)
    gateway = GatewaySettings(
        home=settings.home,
        database_url=settings.resolved_database_url,
        public_url=settings.url,
        index_url=settings.build_index_url,
        python_env_roots=settings.python_env_roots,
    )
    app = create_app(gateway)
    front = None
    if settings.native_front:
        binary = await asyncio.to_thread(build, settings.home.root / "bin")
        try:
            listener = socket.create_server((settings.host, settings.port), backlog=4096)
        except OSError as exc:
            raise RuntimeError(f"the gateway could not start on {settings.url}: {exc}") from exc
        server = _GatewayServer(gateway_config(app), settings.drain_seconds)
        serving = asyncio.create_task(server.serve(sockets=[]))  # the front owns the port; it hands over the rest
    else:
        server = _GatewayServer(gateway_config(app, host=settings.host, port=settings.port), settings.drain_seconds)
        serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise RuntimeError(f"the gateway could not start on {settings.url} (is the port in use?)")
        await asyncio.sleep(0.02)
    if settings.native_front:
        front = await open_front(binary, listener, server, app.api.state.gateway)
    local, local_serving, socket_path = await _serve_local_socket(app, settings)
    _settle_garbage_collector()
    info = {"url": settings.url, "pid": os.getpid(), "socket": str(socket_path)}
    settings.home.server_info.write_text(json.dumps(info))
    supervisor = LocalWorker(settings, worker_token) if worker_token is not None else None
    watching = asyncio.create_task(supervisor.supervise()) if supervisor else None
    echo(f"Cove is serving on {settings.url} (home {settings.home.root}); Ctrl-C stops it")
    if settings.build_index_url:
        echo(f"image builds use only the package index {settings.build_index_url}")
    if settings.python_env_roots:
        echo(f"images may name existing environments under {roots_env_value(settings.python_env_roots)}")
    try:
        await serving
    finally:
        if front is not None:  # stopped already, unless the server failed before its shutdown
            await front.stop(grace=FRONT_STOP_SECONDS)
        local.should_exit = True
        with contextlib.suppress(Exception):
            await local_serving
        socket_path.unlink(missing_ok=True)
        if watching is not None:
            watching.cancel()
        if supervisor is not None:
            await asyncio.to_thread(supervisor.stop)
        with contextlib.suppress(FileNotFoundError):
            info = json.loads(settings.home.server_info.read_text())
            if info.get("pid") == os.getpid():
                settings.home.server_info.unlink()


def _settle_garbage_collector() -> None:
    """Move everything loaded at startup out of the collector's way, and collect young objects less often.

    The gateway makes several short-lived objects per request. Each full
    collection used to walk every module, route and mapper loaded at startup,
    about a tenth of the gateway's CPU time under load. Frozen objects are
    never walked again; the larger first-generation threshold makes young
    collections rarer without letting cycles pile up for long.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def gateway_config(app: Any, **where: Any) -> uvicorn.Config:
    """How uvicorn serves the gateway, in one process or each of ``--processes N`` (``where``: host and port)."""
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=GatewayHttpProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
        backlog=4096,
        **where,
    )


class _GatewayServer(uvicorn.Server):
    """The TCP listener: on SIGTERM it drains (``_drain``), then answers the workers' long polls and waits for
    requests in flight."""

    def __init__(self, config: uvicorn.Config, drain_seconds: float = DEFAULT_DRAIN_SECONDS) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.front: NativeFront | None = None  # the native front on the port, when it runs one
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        if on_signal(sig, self.drain_seconds, lambda signum: super(_GatewayServer, self).handle_exit(signum, None)):
            super().handle_exit(sig, frame)
        elif self.front is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.front.closing)  # draining: the front's answers close too

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.front is not None:  # first: its calls on the way finish while the gateway still runs
            await self.front.stop(grace=FRONT_STOP_SECONDS)
        gateway = getattr(getattr(getattr(self.config.app, "api", None), "state", None), "gateway", None)
        scheduler = getattr(gateway, "scheduler", None)
        if scheduler is not None:
            scheduler.release_long_polls()
        logs = getattr(gateway, "logs", None)
        if logs is not None:
            logs.end_follows()  # an open cove logs --follow ends instead of holding the shutdown back
        changes = getattr(gateway, "changes", None)
        if changes is not None:
            changes.end()  # and so does every dashboard page's change stream
        await super().shutdown(sockets)


class _CompanionServer(uvicorn.Server):
    """A second listener of the same app; the main server owns the signals and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_local_socket(app: Any, settings: ServerSettings) -> tuple[uvicorn.Server, asyncio.Task[None], Path]:
    """Serve the gateway on a unix socket too, for the containers of this machine (they have no network)."""
    path = gateway_socket_path(settings.home.root)
    prepare_socket_folder(path)
    config = uvicorn.Config(
        app,
        uds=str(path),
        loop="uvloop",
        http=GatewayHttpProtocol,
        lifespan="off",  # the TCP server's lifespan already set the app up
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        backlog=4096,
    )
    server = _CompanionServer(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError(f"the gateway could not listen on {path}")
        await asyncio.sleep(0.01)
    return server, serving, path


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the server dies, however it dies, so no worker is orphaned."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def local_worker_argv(settings: ServerSettings) -> list[str]:
    """The local worker's command: ``cove worker``, the very command an operator runs on another host.

    Its token and home come through the environment (see :class:`LocalWorker`), never on a command line.
    """
    cpu, memory = _local_worker_capacity(settings)
    return [
        sys.executable, "-m", "cove", "worker",
        "--gateway", settings.url, "--name", LOCAL_WORKER_NAME,
        "--cpu", f"{cpu}m", "--memory", str(memory), "--home", str(settings.home.root),
        "--runtime", settings.runtime,
    ]  # fmt: skip


class LocalWorker:
    """The server's own worker process, restarted if it dies."""

    def __init__(self, settings: ServerSettings, token: str) -> None:
        self.env = {
            **os.environ,
            "COVE_TOKEN": token,
            "COVE_HOME": str(settings.home.root),
            ROOTS_ENV: roots_env_value(settings.python_env_roots),
        }
        self.argv = local_worker_argv(settings)
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv, env=self.env, preexec_fn=_die_with_parent)

    async def supervise(self) -> None:
        backoff = 0.5
        while True:
            await asyncio.sleep(0.25)
            code = self.proc.poll()
            if code is None:
                backoff = 0.5
                continue
            log.warning("the local worker exited with code %s; restarting it in %.1f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30)
            self.proc = self._spawn()

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
