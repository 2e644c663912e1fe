"""The gateway's CPU per relayed request with and without the native front (``--native-front``), in one run.

Two ``cove server``s (own homes, SQLite) serve ``bench/apps/noop`` warm (or,
with ``--app waits``, a handler that waits 20 ms with the interpreter's lock
released: the front's learned limit must leave it its whole concurrency); one
runs ``cove-front`` on its port (``COVE_NATIVE_FRONT=1``). Each is loaded in
alternating rounds of ``wrk -t1`` at each concurrency. CPU comes from the
``/proc/PID/stat`` counters of the gateway process and, for the first, of
its front (both together are what the gateway spends), divided by wrk's
requests. The goal of #14 is 80 µs per request at c=32; last measured, the
kernel's share of any relay here is 35-45 µs (``relay_floors.py``).

    .venv/bin/python bench/native_front.py [--rounds 2] [--seconds 8] [--concurrency 32 ...] [--app waits]
"""

from __future__ import annotations

import argparse
import os
import subprocess

from _server import CoveServer
from _wrk import wrk_post_counted
from relay_floors import HERE, cpu_seconds

APPS = {"noop": "echo", "waits": "wait"}  # bench/apps/NAME: the endpoint it deploys


def front_pid(server: CoveServer) -> int:
    """The ``cove-front`` child of a server started with ``COVE_NATIVE_FRONT=1``."""
    found = subprocess.run(["pgrep", "-P", str(server.proc.pid), "-f", "cove-front"], capture_output=True, text=True)
    pids = found.stdout.split()
    if not pids:
        raise RuntimeError(f"no cove-front under the server; see {server.tmp / 'server.log'}")
    return int(pids[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--app", choices=sorted(APPS), default="noop")
    args = parser.parse_args()
    endpoint = APPS[args.app]
    native = CoveServer({"COVE_NATIVE_FRONT": "1"})
    plain = CoveServer()
    try:
        for server in (native, plain):
            server.cli("deploy", f"{HERE / 'apps' / args.app / 'app.py'}:{endpoint}")
            for _ in range(3):  # warm, and the front programmed by the gateway's own warm path
                server.http.post(f"/endpoint/{endpoint}", json={}).raise_for_status()
        targets = [
            ("native front", native, {"gateway": native.proc.pid, "front": front_pid(native)}),
            ("gateway", plain, {"gateway": plain.proc.pid}),
        ]
        print(f"warm endpoint ({args.app}), {os.cpu_count()} CPUs, wrk -t1 -d{args.seconds:g}s per row")
        for round_ in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                for name, server, pids in targets:
                    before = {part: cpu_seconds(pid) for part, pid in pids.items()}
                    line, made = wrk_post_counted(
                        f"{server.url}/endpoint/{endpoint}", server.token, "{}", concurrency, args.seconds, threads=1
                    )
                    scale = 1e6 / max(1, made)
                    spent = {
                        part: (user - before[part][0] + system - before[part][1]) * scale
                        for part, (user, system) in ((p, cpu_seconds(pid)) for p, pid in pids.items())
                    }
                    parts = ", ".join(f"{part} {us:.0f}" for part, us in spent.items()) if len(spent) > 1 else ""
                    print(
                        f"round {round_} {name:<12} {line}  | CPU {sum(spent.values()):4.0f} µs/req"
                        + (f" ({parts})" if parts else ""),
                        flush=True,
                    )
    finally:
        native.close()
        plain.close()


if __name__ == "__main__":
    main()
