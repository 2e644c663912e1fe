"""``python -m cove.worker --gateway URL --token T``: a worker without the ``cove`` CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket

from .._home import Home
from . import _logging
from ._settings import WorkerSettings, detect_capacity
from ._worker import run_worker


def main(argv: list[str] | None = None) -> None:
    cpu, memory = detect_capacity()
    parser = argparse.ArgumentParser(prog="python -m cove.worker", description="Run a Cove worker.")
    parser.add_argument("--gateway", default=os.environ.get("COVE_GATEWAY", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("COVE_TOKEN"))
    parser.add_argument("--name", default=socket.gethostname().split(".")[0])
    parser.add_argument("--home", default=None, help="Cove home (default: $COVE_HOME or ~/.local/share/cove)")
    parser.add_argument("--cpu-millis", type=int, default=cpu)
    parser.add_argument("--memory-mib", type=int, default=memory)
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--advertise-host", default=None, help="this host's address for gateways (containers listen on TCP ports)"
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required (--token or COVE_TOKEN)")
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    settings = WorkerSettings(
        gateway_url=args.gateway,
        token=args.token,
        name=args.name,
        home=Home.resolve(args.home),
        cpu_millis=args.cpu_millis,
        memory_mib=args.memory_mib,
        labels=labels,
        advertise_host=args.advertise_host,
    )
    _logging.configure()
    asyncio.run(run_until_signalled(settings))


async def run_until_signalled(settings: WorkerSettings) -> None:
    task = asyncio.ensure_future(run_worker(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    main()
