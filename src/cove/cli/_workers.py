"""``cove worker``: join a gateway (no subcommand), or list, cordon, uncordon and drain workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import typer

from .. import _logging
from .._config import ConfigError, parse_cpu, parse_memory
from .._home import Home
from ._output import JsonOption, client, console, emit, errors, fail, table

worker_app = typer.Typer(
    help="Run a worker (cove worker --gateway URL --token T), or manage workers: list, cordon, uncordon, drain.",
    invoke_without_command=True,
)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    gateway: str = typer.Option("http://127.0.0.1:8474", envvar="COVE_GATEWAY", help="Gateway URL."),
    token: str | None = typer.Option(None, envvar="COVE_TOKEN", help="A worker or admin token."),
    name: str = typer.Option(os.uname().nodename, help="Name of this worker."),
    cpu: str = typer.Option(str(os.cpu_count() or 1), help="CPU to offer, cores or millicores ('4000m')."),
    memory: str = typer.Option("4Gi", help="Memory to offer ('16Gi')."),
    home: Path | None = typer.Option(None, help="Cove home for this worker's files and image cache."),
    runtime: str = typer.Option(
        "auto",
        envvar="COVE_RUNTIME",
        help="Container engine: auto (crun, else runc, else process), crun, runc or process.",
    ),
    advertise_host: str | None = typer.Option(
        None,
        envvar="COVE_ADVERTISE_HOST",
        help="This host's address as gateways reach it; containers then listen on TCP ports of it "
        "(for workers on another host than the gateway).",
    ),
    label: list[str] = typer.Option([], "--label", help="KEY=VALUE, repeatable (e.g. pool=gpu)."),
) -> None:
    """Join a gateway and run its containers on this machine."""
    if ctx.invoked_subcommand is not None:
        return
    from ..worker import WorkerRefused, WorkerSettings
    from ..worker.__main__ import run_until_signalled

    if not token:
        fail("a token is required to join a gateway: --token or COVE_TOKEN (`cove token create --role worker`)")
    bad = [item for item in label if "=" not in item]
    if bad:
        fail(f"labels must be KEY=VALUE, not {', '.join(repr(b) for b in bad)}")
    try:
        cpu_millis, memory_mib = parse_cpu(cpu), parse_memory(memory)
    except ConfigError as exc:
        fail(str(exc))
    _logging.setup()
    settings = WorkerSettings(
        gateway_url=gateway.rstrip("/"),
        token=token,
        name=name,
        home=Home.resolve(home),
        cpu_millis=cpu_millis,
        memory_mib=memory_mib,
        runtime=runtime,
        labels=dict(item.split("=", 1) for item in label),
        advertise_host=advertise_host,
    )
    # SIGTERM (from `cove server`, or the death of its parent) must stop the containers first.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run_until_signalled(settings))
        except WorkerRefused as exc:
            fail(str(exc))


def _ago(stamp: float) -> str:
    return f"{max(0.0, time.time() - stamp):.0f}s ago"


def _show(rows: list[dict[str, Any]]) -> None:
    table(
        ["NAME", "STATE", "RUNTIME", "CPU FREE/TOTAL", "MEMORY FREE/TOTAL", "CONTAINERS", "LABELS", "HEARTBEAT"],
        [
            [
                r["name"],
                r["state"],
                r["runtime"],
                f"{r['free_cpu_millis']}m/{r['cpu_millis']}m",
                f"{r['free_memory_mib']}/{r['memory_mib']} MiB",
                r["containers"],
                ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
                _ago(r["last_heartbeat"]),
            ]
            for r in rows
        ],
    )


@worker_app.command("list")
def worker_list(as_json: bool = JsonOption) -> None:
    """Workers with capacity, free resources, state, runtime, labels, containers and last heartbeat."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/workers")
    emit(rows, as_json, lambda: _show(rows))


def _change(action: str, worker: str, as_json: bool) -> dict[str, Any]:
    api = client(as_json)
    with errors(as_json):
        result: dict[str, Any] = api.request("POST", f"/api/v1/workers/{worker}/{action}")
    return result


@worker_app.command("cordon")
def worker_cordon(worker: str = typer.Argument(..., help="Worker name or id."), as_json: bool = JsonOption) -> None:
    """Place no new containers on a worker; the ones it runs keep running."""
    result = _change("cordon", worker, as_json)
    emit(result, as_json, lambda: console.print(f"worker {result['name']} cordoned", highlight=False))


@worker_app.command("uncordon")
def worker_uncordon(worker: str = typer.Argument(..., help="Worker name or id."), as_json: bool = JsonOption) -> None:
    """Let a cordoned or draining worker take new containers again."""
    result = _change("uncordon", worker, as_json)
    emit(result, as_json, lambda: console.print(f"worker {result['name']} is active", highlight=False))


@worker_app.command("drain")
def worker_drain(
    worker: str = typer.Argument(..., help="Worker name or id."),
    wait: bool = typer.Option(False, "--wait", help="Return only once no container is left on the worker."),
    timeout: float = typer.Option(300, help="With --wait: give up after this many seconds."),
    as_json: bool = JsonOption,
) -> None:
    """Move a worker's containers elsewhere without failing requests, then keep it empty."""
    result = _change("drain", worker, as_json)
    if wait:
        api = client(as_json)
        deadline = time.monotonic() + timeout
        while result["containers"] and time.monotonic() < deadline:
            time.sleep(0.5)
            with errors(as_json):
                rows = api.request("GET", "/api/v1/workers")
            result = next((r for r in rows if r["id"] == result["id"]), {**result, "containers": 0})
        if result["containers"]:
            fail(f"worker {result['name']} still has {result['containers']} container(s) after {timeout:g} s", as_json)
    emit(
        result,
        as_json,
        lambda: console.print(
            f"worker {result['name']} draining; {result['containers']} container(s) left on it", highlight=False
        ),
    )
