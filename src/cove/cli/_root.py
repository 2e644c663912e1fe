"""``cove server`` and ``cove worker``: the long-running processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import httpx
import typer

from cove._host.home import Home, HomeLock
from cove._host.python_envs import ROOTS_ENV, parse_roots, roots_env_value, roots_from_env
from cove._wire.server_defaults import DEFAULT_DRAIN_SECONDS, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_RUNTIME

from ._extras import require
from ._output import JsonOption, console, emit, fail


def server(
    port: int = typer.Option(DEFAULT_PORT, help="Port for the gateway."),
    host: str = typer.Option(DEFAULT_HOST, help="Address to listen on."),
    home: Path | None = typer.Option(None, help="Cove home (default $COVE_HOME or ~/.local/share/cove)."),
    background: bool = typer.Option(False, "--background", help="Start detached; logs go to <home>/server.log."),
    stop: bool = typer.Option(False, "--stop", help="Stop the server running from this home."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Run without the local worker."),
    runtime: str = typer.Option(
        DEFAULT_RUNTIME, envvar="COVE_RUNTIME", help="Container engine of the local worker: auto, crun, runc, process."
    ),
    index_url: str | None = typer.Option(
        None, envvar="COVE_RESERVOIR_URL", help="The only package index image builds may use (a reservoir)."
    ),
    use_reservoir: bool = typer.Option(
        False, "--use-reservoir", help="Build images only from this server's own reservoir (/reservoir/simple/)."
    ),
    reservoir_watch: Path | None = typer.Option(
        None,
        "--reservoir-watch",
        help="Import every complete reservoir bundle dropped in this folder into this server's reservoir "
        "(as `cove reservoir watch` does).",
    ),
    reservoir_watch_hold: bool = typer.Option(
        False, "--reservoir-watch-hold", help="Hold watched bundles for review (`cove reservoir review`)."
    ),
    worker_cpu: str | None = typer.Option(
        None,
        "--worker-cpu",
        help="CPU the local worker offers, cores or millicores (default: this machine's cores; more overcommits).",
    ),
    worker_memory: str | None = typer.Option(
        None,
        "--worker-memory",
        help="Memory the local worker offers, MiB or with a unit (16Gi) (default: this machine's memory).",
    ),
    python_env_root: list[Path] = typer.Option(
        [],
        "--python-env-root",
        help="A folder under which admins' images may name existing environments (python_env); repeatable. "
        "Default: $COVE_PYTHON_ENV_ROOTS (folders separated by ':'); none: such images are refused.",
    ),
    callback_allow: list[str] = typer.Option(
        [],
        "--callback-allow",
        help="A network (CIDR) or host name callback_url may reach besides public addresses; repeatable. "
        "Default: $COVE_CALLBACK_ALLOW (separated by commas). Loopback, private and link-local are refused otherwise.",
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        help="Gateway processes on the one port (SO_REUSEPORT), each restarted if it dies; "
        "more than 1 needs PostgreSQL (COVE_DATABASE_URL).",
    ),
    drain_seconds: float = typer.Option(
        DEFAULT_DRAIN_SECONDS,
        "--drain-seconds",
        envvar="COVE_DRAIN_SECONDS",
        help="After SIGTERM, keep serving this long, each response closing its connection, so clients move to "
        "other gateways before this one stops (behind a load balancer). Ctrl-C and a second SIGTERM stop at once.",
    ),
    native_front: bool = typer.Option(
        False,
        "--native-front",
        envvar="COVE_NATIVE_FRONT",
        help="Serve warm endpoint calls in cove-front, a C relay the gateway programs (built once with cc); "
        "with --processes N, one per process. Opt-in; see docs/cluster.md.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run everything on this machine: gateway, scheduler and a local worker."""
    require("server", "cove server", as_json)
    cove_home = Home.resolve(home)
    _callback_allowance(callback_allow, as_json)
    if stop:
        _stop_server(cove_home, as_json)
        return
    if not 1 <= processes <= 256:
        fail(f"--processes must be from 1 to 256, not {processes}", as_json)
    if not 0 <= drain_seconds <= 3600:
        fail(f"--drain-seconds must be from 0 to 3600, not {drain_seconds:g}", as_json)
    env_roots = _python_env_roots(python_env_root, as_json)
    worker_cpu_millis = _size(worker_cpu, "--worker-cpu", as_json)
    worker_memory_mib = _size(worker_memory, "--worker-memory", as_json)
    if background:
        # The detached server gets the same options (the environment carries the rest).
        forward = [f"--runtime={runtime}", *(f"--callback-allow={c}" for c in callback_allow)]
        forward += ["--no-worker"] * no_worker + ["--use-reservoir"] * use_reservoir
        forward += [f"--index-url={index_url}"] * (index_url is not None)
        forward += [f"--worker-cpu={worker_cpu_millis}m"] * bool(worker_cpu_millis)
        forward += [f"--worker-memory={worker_memory_mib}"] * bool(worker_memory_mib)
        forward += [f"--processes={processes}"] * (processes > 1)
        forward += [f"--drain-seconds={drain_seconds:g}"] * bool(drain_seconds)
        forward += ["--native-front"] * native_front
        if reservoir_watch is not None:
            forward += [
                f"--reservoir-watch={reservoir_watch.resolve()}",
                *["--reservoir-watch-hold"] * reservoir_watch_hold,
            ]
        _start_background(cove_home, host, port, as_json, env_roots, forward)
        return
    import uvloop

    from cove.server import ServerSettings, json_logs, run

    json_logs.setup()
    if reservoir_watch is not None:
        _start_reservoir_watch(cove_home, reservoir_watch, reservoir_watch_hold, as_json)
    settings = ServerSettings(
        home=cove_home,
        host=host,
        port=port,
        local_worker=not no_worker,
        runtime=runtime,
        index_url=index_url,
        use_reservoir=use_reservoir,
        worker_cpu_millis=worker_cpu_millis,
        worker_memory_mib=worker_memory_mib,
        python_env_roots=env_roots,
        processes=processes,
        drain_seconds=drain_seconds,
        native_front=native_front,
    )
    try:
        # uvicorn's loop="uvloop" applies only to a loop it creates; the gateway runs in this one.
        uvloop.run(run(settings, lambda msg: console.print(msg, highlight=False)))
    except RuntimeError as exc:
        fail(str(exc), as_json)
    except KeyboardInterrupt:
        pass


def _start_reservoir_watch(home: Home, folder: Path, hold: bool, as_json: bool) -> None:
    """``--reservoir-watch``: a watcher thread in this process, on the reservoir the gateway serves at /reservoir/."""
    import logging

    from cove.reservoir.errors import ReservoirError
    from cove.reservoir.watch import WatchConfig, start_thread

    log = logging.getLogger("cove.reservoir.watch")
    try:
        start_thread(
            home.root / "reservoir",
            WatchConfig(folder.expanduser().resolve(), hold=hold),
            log=lambda entry: log.info("reservoir watch: %s", json.dumps(entry, sort_keys=True)),
        )
    except ReservoirError as exc:
        fail(f"--reservoir-watch: {exc.message}", as_json)


def _size(value: str | None, flag: str, as_json: bool) -> int:
    """``--worker-cpu`` in millicores or ``--worker-memory`` in MiB; 0 leaves the default."""
    if value is None:
        return 0
    from .._wire.sizes import parse_cpu, parse_memory
    from ..exceptions import ConfigError

    try:
        return parse_cpu(value) if flag == "--worker-cpu" else parse_memory(value)
    except ConfigError as exc:
        fail(f"{flag}: {exc}", as_json)


def _python_env_roots(flags: list[Path], as_json: bool) -> tuple[Path, ...]:
    """``--python-env-root`` folders, or those of ``$COVE_PYTHON_ENV_ROOTS`` when none is given."""
    try:
        return parse_roots(flags) if flags else roots_from_env()
    except ValueError as exc:
        fail(f"--python-env-root: {exc}", as_json)


def _callback_allowance(flags: list[str], as_json: bool) -> None:
    """Check ``--callback-allow`` (or ``$COVE_CALLBACK_ALLOW``) and hand it on through the environment,
    which the gateway (also one started with --background) reads."""
    from ..scheduler import ALLOW_ENV, CallbackPolicy, allowance_from_env

    entries = tuple(flags) or allowance_from_env()
    try:
        CallbackPolicy.parse(entries)
    except ValueError as exc:
        fail(f"--callback-allow: {exc}", as_json)
    if flags:
        os.environ[ALLOW_ENV] = ",".join(flags)


def _server_info(home: Home) -> dict[str, object] | None:
    try:
        info: dict[str, object] = json.loads(home.server_info.read_text())
        return info
    except (OSError, ValueError):
        return None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_background(
    home: Home, host: str, port: int, as_json: bool, python_env_roots: tuple[Path, ...], forward: list[str]
) -> None:
    info = _server_info(home)
    if info and info.get("url") == f"http://{host}:{port}" and _healthy(str(info["url"])):
        # The very server asked for is up: reuse it (`make run` twice).
        emit(
            {"url": info["url"], "pid": info["pid"], "started": False},
            as_json,
            lambda: console.print(f"Cove is already running at {info['url']} (pid {info['pid']})"),
        )
        return
    lock = HomeLock(home)
    if lock.held_by_another():
        fail(lock.holder_message(), as_json)
    new_admin_token = not home.admin_token.exists()
    home.ensure()
    log = _open_server_log(home)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cove",
            "server",
            "--port",
            str(port),
            "--host",
            host,
            "--home",
            str(home.root),
            *forward,
        ],
        env={**os.environ, ROOTS_ENV: roots_env_value(python_env_roots)},
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    with console.status(f"starting Cove at {url}", spinner="dots") if not as_json else _null():
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                if lock.held_by_another():  # another start took the home meanwhile
                    fail(lock.holder_message(), as_json)
                fail(f"the server exited with code {proc.returncode}; see {home.server_log}", as_json)
            if _healthy(url):
                break
            time.sleep(0.1)
        else:
            fail(f"the server did not answer within 60 s; see {home.server_log}", as_json)
    emit(
        {"url": url, "pid": proc.pid, "started": True, "log": str(home.server_log)},
        as_json,
        lambda: console.print(f"Cove is running at {url} (pid {proc.pid}; log {home.server_log})"),
    )
    if new_admin_token and not as_json:
        _show_admin_token(home)


def _open_server_log(home: Home) -> BinaryIO:
    """The detached server's output file, readable by its owner only (whatever an older version left)."""
    fd = os.open(home.server_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def _show_admin_token(home: Home) -> None:
    """The admin token this start created, shown on a terminal only: the server itself never logs it."""
    if not sys.stdout.isatty():
        return
    with contextlib.suppress(OSError):
        secret = home.admin_token.read_text().strip()
        console.print(f"Created an admin token (saved to {home.admin_token}, mode 0600):\n  {secret}", highlight=False)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _stop_server(home: Home, as_json: bool) -> None:
    info = _server_info(home)
    if not info:
        emit({"stopped": False}, as_json, lambda: console.print("no server is running from this home"))
        return
    pid = int(str(info["pid"]))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        home.server_info.unlink(missing_ok=True)
        emit({"stopped": False}, as_json, lambda: console.print("the server was not running"))
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        fail(f"server pid {pid} did not stop within 30 s", as_json)
    emit({"stopped": True, "pid": pid}, as_json, lambda: console.print(f"stopped the server (pid {pid})"))
