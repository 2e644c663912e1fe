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
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import run_load
from _server import CoveServer

APP = Path(__file__).resolve().parent / "apps" / "batching" / "app.py"
BODY = b'{"x": 21}'


def wrk(url: str, token: str, concurrency: int, seconds: float) -> str:
    """``wrk``'s requests/s and latency line for the same POST, or why it did not run."""
    if shutil.which("wrk") is None:
        return "wrk not installed"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY.decode()}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
    threads = min(2, concurrency)
    done = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=False,
    )
    Path(script.name).unlink()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p50 = re.search(r"50%\s+([\d.]+\w+)", done.stdout)
    p99 = re.search(r"99%\s+([\d.]+\w+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if rps is None:
        return f"wrk failed: {done.stderr.strip() or done.stdout.strip()}"
    return (
        f"wrk  {float(rps.group(1)):>9.0f} req/s  p50 {p50.group(1) if p50 else '?'}  "
        f"p99 {p99.group(1) if p99 else '?'}  non-2xx {errors.group(1) if errors else 0}"
    )


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
            print(f"{name:9} {wrk(url, server.token, args.concurrency, args.seconds)}")
        print(f"batched / unbatched throughput: {results['gathered'] / max(results['single'], 1e-9):.1f}x")
    finally:
        server.close()


if __name__ == "__main__":
    main()
