"""``python -m cove.worker --gateway URL --token T``: a worker without the ``cove`` CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket

from .._home import Home
from . import _logging
from ._settings import WorkerSettings, detect_capacity
from ._worker import run_worker

log = logging.getLogger("cove.worker")


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


LEFTOVER_GRACE_SECONDS = 5.0


async def run_until_signalled(settings: WorkerSettings) -> None:
    """Run the worker until SIGTERM or SIGINT, then let its shutdown finish.

    Only the first signal cancels: a local worker often gets two (its server's
    SIGTERM, then the parent-death signal as the server exits), and a second
    cancel would cut short the shutdown that stops its containers.
    """
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


if __name__ == "__main__":
    main()
