"""``f.map`` throughput and ``f.remote`` latency, side by side with Ray Core, Celery and Dramatiq when installed.

    python bench/map.py [--count 10000] [--rounds 300]

Prints inputs/s end to end for ``f.map`` over COUNT no-op inputs and over COUNT
inputs of ~5 ms CPU work, and the round trip of one ``f.remote`` to a warm
container (p50/p99); then the same shapes on Ray (``ray.get([f.remote(i) ...])``),
Celery and Dramatiq with a Redis broker, and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import PEERS
from _server import CoveServer

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cove_numbers(count: int, rounds: int) -> dict[str, object]:
    server = CoveServer()
    try:
        for name in ("noop", "work"):
            server.cli("deploy", f"{ROOT}/bench/apps/tasks/app.py:{name}")
        server.use_from_this_process()
        sys.path.insert(0, str(ROOT / "bench" / "apps" / "tasks"))
        import app  # type: ignore[import-not-found]

        list(app.noop.map(range(500)))  # start and warm the containers
        list(app.work.map(range(200)))
        out: dict[str, object] = {}
        for name in ("noop", "work"):
            fn = getattr(app, name)
            started = time.perf_counter()
            assert list(fn.map(range(count))) == list(range(count))
            out[f"{name}_per_s"] = count / (time.perf_counter() - started)
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            app.noop.remote(1)
            latencies.append((time.perf_counter() - started) * 1000)
        out["round_trip_ms"] = latencies
        return out
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    results = {"cove": cove_numbers(args.count, args.rounds)}
    if not args.no_peers:
        for name, fn in PEERS:
            found = fn(args.count, args.rounds)
            if found is not None:
                results[name] = found
    print(f"\n== {args.count} inputs, {args.rounds} round trips (2 containers for Cove; same cores for all)")
    print(f"{'':8} {'no-op/s':>10} {'5ms-work/s':>11} {'remote p50':>11} {'remote p99':>11}")
    for name, r in results.items():
        trips = r["round_trip_ms"]
        print(
            f"{name:8} {r['noop_per_s']:>10.0f} {r['work_per_s']:>11.0f} "
            f"{statistics.median(trips):>9.2f}ms {pct(trips, 0.99):>9.2f}ms"
        )
    cove = results["cove"]
    for name, r in results.items():
        if name != "cove":
            print(
                f"cove / {name}: no-op {cove['noop_per_s'] / r['noop_per_s']:.2f}x, "
                f"work {cove['work_per_s'] / r['work_per_s']:.2f}x"
            )


if __name__ == "__main__":
    main()
