"""@batched against one call per pass: throughput of a model-like endpoint in one container.

    python bench/batching.py [--seconds S] [--concurrency N]

Starts its own ``cove server`` on a free loopback port, deploys
``bench/apps/batching/app.py`` (a handler costing 5 ms per pass plus 0.1 ms
per item, one pass at a time, as on one accelerator) twice, unbatched and
``@batched(max_batch_size=32, wait_ms=5)``, and drives each with the same
closed-loop load: this repository's generator and ``wrk`` (when installed),
both only against the loopback server. Prints requests/s, p50/p99 latency and
errors for each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import run_load
from _server import CoveServer
from _wrk import wrk_post

APP = Path(__file__).resolve().parent / "apps" / "batching" / "app.py"
BODY = b'{"x": 21}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    server = CoveServer()
    try:
        results = {}
        for name in ("single", "gathered"):
            server.cli("deploy", f"{APP}:{name}", "--name", f"bench-{name}")
            url = f"{server.url}/endpoint/bench-{name}"
            server.http.post(url, content=BODY).raise_for_status()  # the container is up before timing
            load = asyncio.run(
                run_load(
                    url,
                    BODY,
                    concurrency=args.concurrency,
                    requests=10**9,
                    max_seconds=args.seconds,
                    token=server.token,
                )
            )
            results[name] = load.rps
            print(f"{name:9} ours {load.row()}")
            print(f"{name:9} {wrk_post(url, server.token, BODY.decode(), args.concurrency, args.seconds)}")
        print(f"batched / unbatched throughput: {results['gathered'] / max(results['single'], 1e-9):.1f}x")
    finally:
        server.close()


if __name__ == "__main__":
    main()
