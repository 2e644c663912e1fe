"""``cove server`` and ``cove worker``: the long-running processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer

from .. import _logging
from .._home import Home
from ._output import JsonOption, console, emit, fail


def server(
    port: int = typer.Option(8474, help="Port for the gateway."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    home: Path | None = typer.Option(None, help="Cove home (default $COVE_HOME or ~/.local/share/cove)."),
    background: bool = typer.Option(False, "--background", help="Start detached; logs go to <home>/server.log."),
    stop: bool = typer.Option(False, "--stop", help="Stop the server running from this home."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Run without the local worker."),
    runtime: str = typer.Option(
        "auto", envvar="COVE_RUNTIME", help="Container engine of the local worker: auto, crun, runc, process."
    ),
    index_url: str | None = typer.Option(
        None, envvar="COVE_RESERVOIR_URL", help="The only package index image builds may use (a reservoir)."
    ),
    use_reservoir: bool = typer.Option(
        False, "--use-reservoir", help="Build images only from this server's own reservoir (/reservoir/simple/)."
    ),
    worker_cpu: str | None = typer.Option(
        None, "--worker-cpu", help="CPU the local worker offers, cores or millicores (default: 4 x this machine's)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run everything on this machine: gateway, scheduler and a local worker."""
    cove_home = Home.resolve(home)
    if stop:
        _stop_server(cove_home, as_json)
        return
    if background:
        _start_background(cove_home, host, port, as_json)
        return
    import uvloop

    from .._server import ServerSettings, run

    _logging.setup()
    settings = ServerSettings(
        home=cove_home,
        host=host,
        port=port,
        local_worker=not no_worker,
        runtime=runtime,
        index_url=index_url,
        use_reservoir=use_reservoir,
        worker_cpu_millis=_cpu_millis(worker_cpu, as_json),
    )
    try:
        # uvicorn's loop="uvloop" applies only to a loop it creates; the gateway runs in this one.
        uvloop.run(run(settings, lambda msg: console.print(msg, highlight=False)))
    except RuntimeError as exc:
        fail(str(exc), as_json)
    except KeyboardInterrupt:
        pass


def _cpu_millis(value: str | None, as_json: bool) -> int:
    """``--worker-cpu`` in millicores; 0 leaves the default."""
    if value is None:
        return 0
    from .._config import ConfigError, parse_cpu

    try:
        return parse_cpu(value)
    except ConfigError as exc:
        fail(f"--worker-cpu: {exc}", as_json)


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


def _start_background(home: Home, host: str, port: int, as_json: bool) -> None:
    info = _server_info(home)
    if info and _healthy(str(info["url"])):
        emit(
            {"url": info["url"], "pid": info["pid"], "started": False},
            as_json,
            lambda: console.print(f"Cove is already running at {info['url']} (pid {info['pid']})"),
        )
        return
    home.ensure()
    log = home.server_log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove", "server", "--port", str(port), "--host", host, "--home", str(home.root)],
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
