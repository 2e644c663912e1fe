"""The same task shapes on Ray Core and Celery (Redis broker), when they are installed.

Each returns None with a printed reason when its peer is not available, so
the benchmark still runs where only Cove is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _server import free_port

PEER_TASKS = """
import time
from celery import Celery
app = Celery("peer", broker="{broker}", backend="{broker}")
app.conf.update(worker_prefetch_multiplier=64, task_acks_late=False, result_expires=600)

@app.task
def noop(i):
    return i

@app.task
def work(i):
    deadline = time.process_time() + 0.005
    while time.process_time() < deadline:
        pass
    return i
"""


def ray_numbers(count: int, rounds: int) -> dict[str, Any] | None:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        print("ray: not installed (pip install ray) - skipped")
        return None
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:

        @ray.remote
        def noop(i: int) -> int:
            return i

        @ray.remote
        def work(i: int) -> int:
            deadline = time.process_time() + 0.005
            while time.process_time() < deadline:
                pass
            return i

        ray.get([noop.remote(i) for i in range(200)])  # warm the worker pool
        out: dict[str, Any] = {}
        for name, fn in (("noop", noop), ("work", work)):
            started = time.perf_counter()
            assert ray.get([fn.remote(i) for i in range(count)]) == list(range(count))
            out[f"{name}_per_s"] = count / (time.perf_counter() - started)
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            ray.get(noop.remote(1))
            latencies.append((time.perf_counter() - started) * 1000)
        out["round_trip_ms"] = latencies
        return out
    finally:
        ray.shutdown()


def celery_numbers(count: int, rounds: int) -> dict[str, Any] | None:
    try:
        import celery  # type: ignore[import-not-found]  # noqa: F401
        import redis  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("celery: not installed (pip install celery redis) - skipped")
        return None
    server = shutil.which("redis-server")
    if server is None:
        print("celery: redis-server not found (apt-get install redis-server) - skipped")
        return None
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="cove-celery-"))
    redis_proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp,
    )
    broker = f"redis://127.0.0.1:{port}/0"
    (tmp / "peer.py").write_text(PEER_TASKS.replace("{broker}", broker))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "peer",
            "worker",
            "--concurrency",
            str(os.cpu_count() or 2),
            "--loglevel",
            "WARNING",
            "--pool",
            "prefork",
        ],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sys.path.insert(0, str(tmp))
    try:
        import peer  # type: ignore[import-not-found]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                peer.noop.delay(0).get(timeout=1)
                break
            except Exception:
                time.sleep(0.5)
        out: dict[str, Any] = {}
        for name in ("noop", "work"):
            task = getattr(peer, name)
            started = time.perf_counter()
            results = [task.delay(i) for i in range(count)]
            assert [r.get(timeout=600) for r in results] == list(range(count))
            out[f"{name}_per_s"] = count / (time.perf_counter() - started)
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            peer.noop.delay(1).get(timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
        out["round_trip_ms"] = latencies
        return out
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        redis_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
