"""Dashboard page times with a big store: the API calls the overview and tasks pages make.

    python bench/dashboard.py [--deployments 1000] [--tasks 100000] [--rounds 20]

Starts its own ``cove server`` on a free loopback port with a temporary home, fills its
store with DEPLOYMENTS function deployments and TASKS finished tasks (one in ten failed,
spread over the deployments and over a day), then times each request the pages send
(through the gateway, over HTTP, with a session cookie as the browser sends it) and each
page's set of requests sent together as the page does: p50/p95 over ROUNDS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CoveServer

from cove.store import Store, sqlite_url

IMAGE = "bench-image"
CODE = "c" * 64


async def fill(db: Path, deployments: int, tasks: int) -> list[str]:
    """DEPLOYMENTS deployments and TASKS finished tasks in the server's store; the deployments' names."""
    store = Store(sqlite_url(db))
    try:
        ws = await store.get_workspace("default")
        from cove.store import Principal

        who = Principal("tok-bench", ws.id, ws.name, "admin")
        await store.put_image(IMAGE, {}, status="ready")
        await store.add_code(CODE, 1, who)
        ids: list[tuple[str, str]] = []
        for n in range(deployments):
            row, _ = await store.create_deployment(
                who, name=f"fn-{n:04d}", app=f"app-{n // 10}", kind="function", module="m", function="f",
                image_id=IMAGE, code_hash=CODE, config={},
            )  # fmt: skip
            ids.append((row.id, row.name))
        from sqlalchemy import insert

        from cove.store import Task

        now = time.time()
        rng = random.Random(7)
        for first in range(0, tasks, 5000):
            rows = []
            for n in range(first, min(tasks, first + 5000)):
                dep_id, name = ids[rng.randrange(len(ids))]
                failed = n % 10 == 0
                created = now - rng.uniform(0, 86400)
                rows.append(
                    {
                        "id": f"tsk-bench{n:08d}", "workspace_id": ws.id, "deployment_id": dep_id, "name": name,
                        "map_id": None, "map_index": None, "state": "FAILED" if failed else "COMPLETE",
                        "format": "json", "args": b"{}", "result": None if failed else b"1",
                        "error": {"type": "ValueError", "message": "bench"} if failed else None,
                        "attempts": [], "attempt": 1, "created_at": created, "not_before": 0.0,
                        "started_at": created, "finished_at": created + 0.01, "container_id": None,
                    }
                )  # fmt: skip
            async with store.engine.begin() as conn:
                await conn.execute(insert(Task.__table__), rows)
        return [name for _, name in ids]
    finally:
        await store.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    reply = await client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if reply.status_code != 200:
        raise RuntimeError(f"GET {path}: {reply.status_code} {reply.text[:200]}")
    return elapsed


async def measure(url: str, token: str, pages: dict[str, list[str]], rounds: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        signed_in = await client.post("/dashboard/session", json={"token": token}, headers={"Origin": url})
        signed_in.raise_for_status()  # the cookie from here on, as the browser sends it
        results: dict[str, Any] = {}
        for page, paths in pages.items():
            for path in paths:
                await timed(client, path)  # warm: the first read of a table pays for the disk cache
            per_path: dict[str, list[float]] = {p: [] for p in paths}
            whole: list[float] = []
            for _ in range(rounds):
                started = time.perf_counter()
                times = await asyncio.gather(*(timed(client, p) for p in paths))  # together, as the page sends them
                whole.append((time.perf_counter() - started) * 1000)
                for path, ms in zip(paths, times, strict=True):
                    per_path[path].append(ms)
            results[page] = {"page": whole, "requests": per_path}
        return results


def line(label: str, values: list[float]) -> str:
    return f"  {label:<62} p50 {statistics.median(values):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    server = CoveServer()
    try:
        started = time.perf_counter()
        names = asyncio.run(fill(server.home / "cove.db", args.deployments, args.tasks))
        print(
            f"store: {args.deployments} deployments, {args.tasks} tasks ({time.perf_counter() - started:.0f} s to fill)"
        )
        some = names[len(names) // 2]
        pages = {
            "overview": [
                "/api/v1/deployments",
                "/api/v1/containers",
                "/api/v1/workers",
                "/api/v1/gpus",
                "/api/v1/tasks?state=PENDING&limit=1000",
                "/api/v1/tasks?state=FAILED&limit=10",
                "/api/v1/events?limit=200",
            ],
            "tasks, first page": ["/api/v1/deployments", "/api/v1/tasks?limit=51&offset=0"],
            "tasks, page 100": ["/api/v1/tasks?limit=51&offset=4950"],
            "tasks, failed of one deployment": [f"/api/v1/tasks?state=FAILED&name={some}&limit=51&offset=0"],
            "tasks, one deployment": [f"/api/v1/tasks?name={some}&limit=51&offset=0"],
            "deployment page": [
                "/api/v1/deployments?all=true",
                "/api/v1/containers?all=true",
                f"/api/v1/events?deployment={some}&limit=30",
                f"/api/v1/deployments/{some}/history",
            ],
        }
        results = measure_sync(server.url, server.token, pages, args.rounds)
        for page, found in results.items():
            print(f"\n== {page}")
            print(line("the page's requests, together", found["page"]))
            for path, values in found["requests"].items():
                print(line(path, values))
    finally:
        server.close()


def measure_sync(url: str, token: str, pages: dict[str, list[str]], rounds: int) -> dict[str, Any]:
    return asyncio.run(measure(url, token, pages, rounds))


if __name__ == "__main__":
    main()
