"""Cove's invocation path against Ray Serve and a bare uvicorn app, same JSON echo, one script.

    python bench/serve_vs_ray.py [--requests N] [--burst N]

For each of Cove (gateway → container), Ray Serve (default ``max_ongoing_requests``
and 100) and bare uvicorn (uvloop + httptools, one process, the physical
reference): requests/s and p50/p99 at concurrency 1, 8 and 32; for Cove and Ray
Serve also the time from deploy to the first answered request, the time for a
burst of concurrent requests to be answered starting from zero replicas, and the
resident memory of the whole idle system with one warm replica. Ray Serve runs
only when ``ray[serve]`` is installed in this environment; everything listens on
loopback and is started (and stopped) by this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import LoadResult, run_load
from _server import CoveServer, free_port, start_bare_uvicorn

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"x": [1.0, 2.0, 3.0, 4.0]}).encode()
CONCURRENCY = (1, 8, 32)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total_kib, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, ()))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


async def load_rows(url: str, token: str | None, requests: int) -> list[LoadResult]:
    rows = []
    for concurrency in CONCURRENCY:
        await run_load(url, BODY, concurrency=concurrency, requests=100, max_seconds=5, token=token)  # warm-up
        rows.append(await run_load(url, BODY, concurrency=concurrency, requests=requests, max_seconds=20, token=token))
    return rows


async def burst(url: str, token: str | None, count: int) -> tuple[float, float, int]:
    """``count`` requests at once, each on its own connection: (first answer s, last answer s, failures)."""

    async def one() -> tuple[float, int]:
        result = await run_load(url, BODY, concurrency=1, requests=1, max_seconds=120, token=token)
        return time.perf_counter(), result.errors + (0 if result.latencies_ms else 1)

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)))
    ends = sorted(end for end, failed in results if not failed)
    failures = sum(failed for _, failed in results)
    if not ends:
        return float("nan"), float("nan"), failures
    return ends[0] - started, ends[-1] - started, failures


def cove_numbers(args: argparse.Namespace) -> dict[str, Any]:
    cove = CoveServer()
    try:
        started = time.perf_counter()
        cove.cli("deploy", f"{ROOT}/bench/apps/noop/app.py:echo")
        url = f"{cove.url}/endpoint/echo"
        while cove.http.post("/endpoint/echo", content=BODY).status_code != 200:
            time.sleep(0.01)
        deployed = time.perf_counter() - started
        rows = asyncio.run(load_rows(url, cove.token, args.requests))
        time.sleep(1)
        memory = tree_rss_mib(cove.proc.pid)
        for container in cove.http.get("/api/v1/containers").json():
            cove.http.post(f"/api/v1/containers/{container['id']}/stop")
        while cove.http.get("/api/v1/containers").json():
            time.sleep(0.05)
        first, last, failures = asyncio.run(burst(url, cove.token, args.burst))
        return {"rows": rows, "deployed": deployed, "burst": (first, last, failures), "memory": memory}
    finally:
        cove.close()


def ray_numbers(args: argparse.Namespace, max_ongoing: int) -> dict[str, Any] | None:
    try:
        import ray.serve  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("ray serve: not installed (pip install 'ray[serve]') - skipped")
        return None
    port = free_port()
    peer = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_ray_serve_peer.py"), str(port), str(max_ongoing)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert peer.stdin is not None and peer.stdout is not None
    try:
        deployed = json.loads(peer.stdout.readline())["deployed"]
        url = f"http://127.0.0.1:{port}/echo"
        rows = asyncio.run(load_rows(url, None, args.requests))
        time.sleep(1)
        memory = tree_rss_mib(peer.pid)
        peer.stdin.write("zero\n")
        peer.stdin.flush()
        json.loads(peer.stdout.readline())
        first, last, failures = asyncio.run(burst(url, None, args.burst))
        return {"rows": rows, "deployed": deployed, "burst": (first, last, failures), "memory": memory}
    finally:
        peer.kill()
        peer.wait()
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True)


def bare_numbers(args: argparse.Namespace) -> list[LoadResult]:
    bare, url = start_bare_uvicorn()
    try:
        return asyncio.run(load_rows(url, None, args.requests))
    finally:
        bare.terminate()
        bare.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000, help="requests per load run")
    parser.add_argument("--burst", type=int, default=100, help="concurrent requests for the scale-from-zero burst")
    args = parser.parse_args()

    systems: dict[str, dict[str, Any] | None] = {"cove": cove_numbers(args)}
    for ongoing in (5, 100):
        systems[f"ray serve (max_ongoing_requests={ongoing})"] = ray_numbers(args, ongoing)
    bare = bare_numbers(args)

    print("\n== JSON echo, closed loop over kept-alive connections")
    for name, numbers in [*systems.items(), ("bare uvicorn", {"rows": bare})]:
        if numbers is None:
            continue
        print(name)
        for row in numbers["rows"]:
            print(f"  {row.row()}")
    print("\n== deploy, scale from zero, idle memory")
    for name, numbers in systems.items():
        if numbers is None:
            continue
        first, last, failures = numbers["burst"]
        print(
            f"{name:<38} deploy → first answer {numbers['deployed']:6.2f} s   "
            f"burst of {args.burst} from zero: first {first:6.2f} s, all {last:6.2f} s, failures {failures}   "
            f"idle RSS with one replica {numbers['memory']:7.0f} MiB"
        )
    print("\n== ratios at c=32")
    bare32 = bare[-1]
    cove32 = systems["cove"]["rows"][-1] if systems["cove"] else None
    if cove32 is not None:
        ratio = cove32.rps / bare32.rps
        print(f"cove / bare uvicorn: {ratio:5.2f}× (target ≥ 0.33), cove p99 {cove32.pct(0.99):.1f} ms")
        for name, numbers in systems.items():
            if name != "cove" and numbers is not None:
                print(f"cove / {name}: {cove32.rps / numbers['rows'][-1].rps:6.1f}×")


if __name__ == "__main__":
    main()
