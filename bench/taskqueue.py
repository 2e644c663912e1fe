"""Task-queue benchmark: 10,000 puts, then the drain with 2 containers, and one task's round trip.

    python bench/taskqueue.py [--count 10000] [--rounds 200]

Puts go over HTTP (``POST /taskqueue/queued``, JSON, 32 connections), each one
committed to the store before its 202. Completions/s runs from the first put
to the last task COMPLETE in the store; the gateway's CPU time over that span,
per task, shows where a change moved the cost. The round trip is ``tq.put(1).result()``
from the SDK. Ray Core, Celery and Dramatiq (Redis broker) run the same shapes when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import run_load
from _peers import PEERS
from _server import CoveServer

ROOT = Path(__file__).resolve().parent.parent


def complete(home: Path) -> int:
    with sqlite3.connect(f"file:{home / 'cove.db'}?mode=ro", uri=True, timeout=30) as db:
        (count,) = db.execute("SELECT count(*) FROM tasks WHERE name = 'queued' AND state = 'COMPLETE'").fetchone()
    return int(count)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cove_numbers(count: int, rounds: int) -> dict[str, object]:
    server = CoveServer()
    try:
        server.cli("deploy", f"{ROOT}/bench/apps/tasks/app.py:queued")
        server.use_from_this_process()
        sys.path.insert(0, str(ROOT / "bench" / "apps" / "tasks"))
        import app  # type: ignore[import-not-found]

        for _ in range(20):
            app.queued.put(0).result(timeout=60)  # containers up and warm
        base = complete(server.home)
        gateway_cpu = cpu_seconds(server.proc.pid)
        started = time.perf_counter()
        puts = asyncio.run(
            run_load(
                f"{server.url}/taskqueue/queued",
                json.dumps({"i": 1}).encode(),
                concurrency=32,
                requests=count,
                max_seconds=300,
                token=server.token,
                ok_status=202,
            )
        )
        if puts.errors:
            raise RuntimeError(f"{puts.errors} puts failed")
        deadline = time.monotonic() + 600
        while complete(server.home) < base + count and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = time.perf_counter() - started
        gateway_cpu = cpu_seconds(server.proc.pid) - gateway_cpu
        latencies = []
        for _ in range(rounds):
            t = time.perf_counter()
            app.queued.put(1).result(timeout=60)
            latencies.append((time.perf_counter() - t) * 1000)
        return {
            "put_per_s": puts.rps,
            "complete_per_s": count / drained,
            "round_trip_ms": latencies,
            "gateway_us_per_task": gateway_cpu / count * 1e6,
        }
    finally:
        server.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    cove = cove_numbers(args.count, args.rounds)
    trips = cove["round_trip_ms"]
    assert isinstance(trips, list)
    print(f"\n== {args.count} tasks, 2 containers")
    print(
        f"cove    puts {cove['put_per_s']:>8.0f}/s   completions {cove['complete_per_s']:>8.0f}/s   "
        f"round trip p50 {statistics.median(trips):.2f} ms p99 {pct(trips, 0.99):.2f} ms"
    )
    print(f"cove    gateway CPU per task (puts and drain) {cove['gateway_us_per_task']:.0f} µs")
    if not args.no_peers:
        for name, numbers in PEERS:
            peer = numbers(args.count, args.rounds)
            if peer is None:
                continue
            ptrips = peer["round_trip_ms"]
            print(
                f"{name:<7} completions {peer['noop_per_s']:>8.0f}/s   "
                f"round trip p50 {statistics.median(ptrips):.2f} ms p99 {pct(ptrips, 0.99):.2f} ms"
            )
            ratio = cove["complete_per_s"] / peer["noop_per_s"]  # type: ignore[operator]
            print(f"cove / {name} completions: {ratio:.2f}x")


if __name__ == "__main__":
    main()
