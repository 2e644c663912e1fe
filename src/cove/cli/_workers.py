"""``cove worker``: join a gateway (no subcommand), or list, cordon, uncordon and drain workers.

``python -m cove.worker`` is this very command (:mod:`cove.worker.__main__`), and ``cove server`` starts
its local worker as ``python -m cove worker``: every way of starting a worker reads the same options, with
the same defaults, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cove._host.home import Home
from cove._host.python_envs import ROOTS_ENV, parse_roots, roots_from_env
from cove._wire.server_defaults import DEFAULT_RUNTIME, default_gateway_url

from .._wire.sizes import parse_cpu, parse_memory
from ..exceptions import ConfigError
from ._extras import require
from ._output import JsonOption, client, console, emit, errors, fail, table

if TYPE_CHECKING:
    from ..worker import WorkerSettings

log = logging.getLogger("cove.worker")

LEFTOVER_GRACE_SECONDS = 5.0

# Run on its own as ``python -m cove.worker``, it must behave as it does under the ``cove`` app: same help
# (no completion options of its own) and the same plain tracebacks.
worker_app = typer.Typer(
    help="Run a worker (cove worker --gateway URL --token T), or manage workers: list, cordon, uncordon, drain.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    gateway: str = typer.Option(default_gateway_url(), envvar="COVE_GATEWAY", help="Gateway URL."),
    token: str | None = typer.Option(None, envvar="COVE_TOKEN", help="A worker or admin token."),
    name: str = typer.Option(os.uname().nodename, help="Name of this worker."),
    cpu: str | None = typer.Option(
        None, help="CPU to offer, cores or millicores ('4000m'). Default: the cores this process may run on."
    ),
    memory: str | None = typer.Option(None, help="Memory to offer ('16Gi'). Default: this machine's memory."),
    home: Path | None = typer.Option(
        None, help="Cove home for this worker's files and image cache (default $COVE_HOME or ~/.local/share/cove)."
    ),
    runtime: str = typer.Option(
        DEFAULT_RUNTIME,
        envvar="COVE_RUNTIME",
        help="Container engine: auto (crun, else runc, else process), crun, runc or process (no isolation).",
    ),
    advertise_host: str | None = typer.Option(
        None,
        envvar="COVE_ADVERTISE_HOST",
        help="This host's address as gateways reach it; containers then listen on TCP ports of it "
        "(for workers on another host than the gateway).",
    ),
    label: list[str] = typer.Option((), "--label", help="KEY=VALUE, repeatable (e.g. pool=gpu)."),
    python_env_root: list[Path] = typer.Option(
        (),
        "--python-env-root",
        help="A folder under which images may name existing environments (python_env); repeatable. "
        f"Default: ${ROOTS_ENV} (folders separated by ':'); none: such images fail to start here.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Join a gateway and run its containers on this machine."""
    if ctx.invoked_subcommand is not None:
        if as_json:
            # `cove worker --json list` asks for what `cove worker list --json` does; the subcommand's
            # context, made after this callback returns, takes its defaults from this map.
            ctx.default_map = {**(ctx.default_map or {}), ctx.invoked_subcommand: {"as_json": True}}
        return
    require("server", "cove worker", as_json)
    from ..server import json_logs
    from ..worker import WorkerRefused, WorkerSettings, detect_capacity

    if not token:
        fail(
            "a token is required to join a gateway: --token or COVE_TOKEN (`cove token create --role worker`)",
            as_json,
        )
    bad = [item for item in label if "=" not in item]
    if bad:
        fail(f"labels must be KEY=VALUE, not {', '.join(repr(b) for b in bad)}", as_json)
    detected_cpu, detected_memory = detect_capacity()
    try:
        cpu_millis = parse_cpu(cpu) if cpu is not None else detected_cpu
        memory_mib = parse_memory(memory) if memory is not None else detected_memory
    except ConfigError as exc:
        fail(str(exc), as_json)
    try:
        env_roots = parse_roots(python_env_root) if python_env_root else roots_from_env()
    except ValueError as exc:
        fail(f"--python-env-root: {exc}", as_json)
    json_logs.setup()
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
        python_env_roots=env_roots,
    )
    # SIGTERM (from `cove server`, or the death of its parent) must stop the containers first.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run_until_signalled(settings))
        except WorkerRefused as exc:
            fail(str(exc), as_json)


async def run_until_signalled(settings: WorkerSettings) -> None:
    """Run the worker until SIGTERM or SIGINT, then let its shutdown finish.

    Only the first signal cancels: a local worker often gets two (its server's
    SIGTERM, then the parent-death signal as the server exits), and a second
    cancel would cut short the shutdown that stops its containers.
    """
    from ..worker import run_worker

    task = asyncio.ensure_future(run_worker(settings))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if not task.cancelling():
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await _end_leftovers()


async def _end_leftovers() -> None:
    """Cancel the tasks still running, and exit anyway if some will not end.

    ``asyncio.run`` would wait for them without a bound, so a task that never
    finishes would keep the worker alive after its server is gone.
    """
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    for leftover in leftovers:
        leftover.cancel()
    if not leftovers:
        return
    _, stuck = await asyncio.wait(leftovers, timeout=LEFTOVER_GRACE_SECONDS)
    if stuck:
        log.error(
            "tasks did not end after the worker stopped; exiting anyway", extra={"tasks": [repr(t) for t in stuck]}
        )
        logging.shutdown()
        os._exit(1)


def _ago(stamp: float) -> str:
    return f"{max(0.0, time.time() - stamp):.0f}s ago"


def _show(rows: list[dict[str, Any]]) -> None:
    table(
        [
            "NAME",
            "STATE",
            "RUNTIME",
            "CPU FREE/TOTAL",
            "MEMORY FREE/TOTAL",
            "CONTAINERS",
            "LABELS",
            "MODELS",
            "HEARTBEAT",
        ],
        [
            [
                r["name"],
                r["state"],
                r["runtime"],
                f"{r['free_cpu_millis']}m/{r['cpu_millis']}m",
                f"{r['free_memory_mib']}/{r['memory_mib']} MiB",
                r["containers"],
                ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
                ",".join(r.get("models") or []),
                _ago(r["last_heartbeat"]),
            ]
            for r in rows
        ],
    )


@worker_app.command("list")
def worker_list(as_json: bool = JsonOption) -> None:
    """Workers with capacity, free resources, state, runtime, labels, containers, cached models, last heartbeat."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/workers")
    emit(rows, as_json, lambda: _show(rows))


@worker_app.command("prefetch")
def worker_prefetch(
    model: str = typer.Argument(..., help="ORG/NAME[@REVISION] of a model in the reservoir."),
    pool: str | None = typer.Option(None, "--pool", help="Only the workers of this pool."),
    as_json: bool = JsonOption,
) -> None:
    """Fetch a model into the weight cache of every live worker (of a pool) ahead of a rollout."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", "/api/v1/workers/prefetch", json={"model": model, "pool": pool})

    def show() -> None:
        for warning in result.get("warnings", []):
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        console.print(f"fetching {result['model']} on {', '.join(result['workers'])}", highlight=False)

    emit(result, as_json, show)


@worker_app.command("pools")
def worker_pools(as_json: bool = JsonOption) -> None:
    """Worker pools on Kubernetes: the pods the pool controller has pending, ready and draining."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/worker-pools")

    def show() -> None:
        if not rows:
            console.print("no worker pools (the gateway runs no Kubernetes pool controller)", highlight=False)
        for r in rows:
            console.print(
                f"{r['pool']}: {r['ready']} ready, {r['pending']} pending, {r['draining']} draining, "
                f"{r['desired']} desired (min {r['min']}, max {r['max']})",
                highlight=False,
            )

    emit(rows, as_json, show)


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
