"""Endpoint benchmark: cold starts, warm latency and throughput, against a bare uvicorn app.

    python bench/endpoint.py [--cold N] [--requests N] [--pool both|on|off] [--cold-only] [--tracing]

Starts its own ``cove server`` on a free loopback port with a temporary home,
deploys a no-import handler and the numpy example, and prints:
cold start (no container → response) p50/p95 for both, through the gateway,
with the worker's container pool on (a container made ahead: only ``crun
start`` is left) and off (``COVE_POOL_PER_SPEC=0``: the whole ``crun run``),
each with the median of every phase the platform records; warm p50/p99 and
requests/s at concurrency 1 and 32 through the gateway; the same for a bare
uvicorn app (uvloop + httptools, one process) answering the same JSON.
``--tracing`` runs only the warm gateway runs, with OpenTelemetry tracing off
and on (``COVE_OTLP_ENDPOINT`` set: every request's spans exported to a
receiver on loopback that accepts and drops them), one after the other.

Phases (ms, median): ``order_ms`` gateway order → worker has it; ``image_ms``/
``code_ms``/``socket_ms`` preparation; ``mount_ms``/``spec_ms`` the bundle;
``spawn_ms`` posix_spawn of crun; ``runtime_start_ms`` crun until the runner's
exec; ``ready_ms`` spawn → runner accepting; ``total_ms`` worker's order → ready;
``rest_ms`` the end-to-end time minus ``order_ms`` and ``total_ms`` (request
parsing, the events' trip, the relay to the container and the first response).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import run_load, summary
from _server import CoveServer, start_bare_uvicorn

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"x": [1.0, 2.0, 3.0, 4.0]}).encode()


class Cove(CoveServer):
    def stop_containers(self, name: str) -> None:
        for c in self.http.get("/api/v1/containers").json():
            if c["deployment"] == name:
                self.http.post(f"/api/v1/containers/{c['id']}/stop")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not any(c["deployment"] == name for c in self.http.get("/api/v1/containers").json()):
                return
            time.sleep(0.02)
        raise RuntimeError(f"containers of {name} did not stop")

    def cold_starts(self, name: str, count: int, settle: float = 0.0) -> tuple[list[float], list[dict[str, float]]]:
        """``count`` requests, each with no container running; ``settle`` s after each stop (the pool refills)."""
        times, phases = [], []
        for _ in range(count):
            self.stop_containers(name)
            time.sleep(settle)
            started = time.perf_counter()
            response = self.http.post(f"/endpoint/{name}", content=BODY)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"cold start of {name} failed: {response.status_code} {response.text}")
            container = response.headers["x-cove-container"]
            row = next((c for c in self.http.get("/api/v1/containers").json() if c["id"] == container), None)
            if row and row["timings"]:
                timings = dict(row["timings"])
                timings["rest_ms"] = times[-1] - timings.get("order_ms", 0.0) - timings.get("total_ms", 0.0)
                phases.append(timings)
        return times, phases


def phase_summary(phases: list[dict[str, float]]) -> str:
    if not phases:
        return ""
    keys = sorted({k for p in phases for k in p} - {"created_ahead"})
    return "  ".join(f"{k}={statistics.median(p.get(k, 0) for p in phases):.1f}" for k in keys)


def cold_section(count: int, pool: str) -> None:
    """Cold starts through the gateway with the worker's container pool ``on`` or ``off``."""
    os.environ["COVE_POOL_PER_SPEC"] = "1" if pool == "on" else "0"
    cove = Cove()
    try:
        cove.cli("deploy", f"{ROOT}/bench/apps/noop/app.py:echo")
        cove.cli("deploy", f"{ROOT}/examples/hello/app.py:predict")
        # With the pool, each stop is followed by making the next container ahead: give it time (not timed).
        settle = 0.4 if pool == "on" else 0.05
        cove.cold_starts("echo", 3, settle)  # warm the page cache; dropped
        cold_noop, phases_noop = cove.cold_starts("echo", count, settle)
        cove.cold_starts("predict", 2, settle + 0.4)
        cold_numpy, phases_numpy = cove.cold_starts("predict", max(20, count * 2 // 5), settle + 0.4)
    finally:
        cove.close()
    print(f"\n== cold start through the gateway, container pool {pool}")
    print(f"no-import handler   {summary(cold_noop)}")
    print(f"  phases (median ms): {phase_summary(phases_noop)}")
    print(f"numpy example       {summary(cold_numpy)}")
    print(f"  phases (median ms): {phase_summary(phases_numpy)}", flush=True)


async def warm(url: str, token: str | None, requests: int) -> list[str]:
    rows = []
    for concurrency in (1, 32):
        await run_load(url, BODY, concurrency=concurrency, requests=200, max_seconds=5, token=token)  # warm-up
        result = await run_load(url, BODY, concurrency=concurrency, requests=requests, max_seconds=20, token=token)
        rows.append(result)
    return rows  # type: ignore[return-value]


def tracing_section(requests: int) -> None:
    """Warm requests through the gateway with tracing off, then on (spans to a receiver that drops them)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    Thread(target=sink.serve_forever, daemon=True).start()
    print("\n== warm requests through the gateway, tracing off and on")
    try:
        for label, endpoint in (("off", None), ("on", f"http://127.0.0.1:{sink.server_port}")):
            if endpoint is None:
                os.environ.pop("COVE_OTLP_ENDPOINT", None)
            else:
                os.environ["COVE_OTLP_ENDPOINT"] = endpoint
            cove = Cove()
            try:
                cove.cli("deploy", f"{ROOT}/bench/apps/noop/app.py:echo")
                for row in asyncio.run(warm(f"{cove.url}/endpoint/echo", cove.token, requests)):
                    print(f"  tracing {label:<3} {row.row()}", flush=True)  # type: ignore[attr-defined]
            finally:
                cove.close()
    finally:
        os.environ.pop("COVE_OTLP_ENDPOINT", None)
        sink.shutdown()
        sink.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=50, help="cold starts of the no-import handler (numpy: 2/5, ≥ 20)")
    parser.add_argument("--requests", type=int, default=5000, help="requests per warm run")
    parser.add_argument("--pool", choices=["both", "on", "off"], default="both", help="cold starts with the pool")
    parser.add_argument("--cold-only", action="store_true", help="only the cold-start sections")
    parser.add_argument("--tracing", action="store_true", help="only warm runs, tracing off then on")
    args = parser.parse_args()
    if args.tracing:
        tracing_section(args.requests)
        return
    for pool in ("on", "off") if args.pool == "both" else (args.pool,):
        cold_section(args.cold, pool)
    os.environ.pop("COVE_POOL_PER_SPEC", None)
    if args.cold_only:
        return

    cove = Cove()
    bare = None
    try:
        cove.cli("deploy", f"{ROOT}/bench/apps/noop/app.py:echo")
        gateway_rows = asyncio.run(warm(f"{cove.url}/endpoint/echo", cove.token, args.requests))

        bare, bare_url = start_bare_uvicorn()
        bare_rows = asyncio.run(warm(bare_url, None, args.requests))

        print("\n== warm requests (same JSON echo)")
        for label, rows in (("cove gateway → container", gateway_rows), ("bare uvicorn", bare_rows)):
            print(label)
            for row in rows:
                print(f"  {row.row()}")
        print("\n== gateway overhead")
        for g, b in zip(gateway_rows, bare_rows, strict=True):
            print(
                f"  c={g.concurrency:<3} throughput {g.rps / b.rps:5.2f}× bare uvicorn; "
                f"p50 +{g.pct(0.5) - b.pct(0.5):.2f} ms"
            )
    finally:
        if bare is not None:
            bare.terminate()
        cove.close()


if __name__ == "__main__":
    main()
