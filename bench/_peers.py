"""The same task shapes on Ray Core, Celery and Dramatiq (Redis broker), when they are installed.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _server import free_port

CELERY_TASKS = """
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

DRAMATIQ_TASKS = """
import time
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
broker = RedisBroker(url="{broker}")
broker.add_middleware(Results(backend=RedisBackend(url="{broker}")))
dramatiq.set_broker(broker)

@dramatiq.actor(store_results=True, max_retries=0)
def noop(i):
    return i

@dramatiq.actor(store_results=True, max_retries=0)
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


@contextmanager
def _redis_peer(name: str, tasks: str, worker_args: list[str]) -> Iterator[Any | None]:
    """A throwaway redis-server on loopback, the peer's task module and its worker processes."""
    server = shutil.which("redis-server")
    if server is None:
        print(f"{name}: redis-server not found (apt-get install redis-server) - skipped")
        yield None
        return
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix=f"cove-{name}-"))
    redis_proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp,
    )
    module = f"{name}_peer"
    (tmp / f"{module}.py").write_text(tasks.replace("{broker}", f"redis://127.0.0.1:{port}/0"))
    worker = subprocess.Popen(
        [sys.executable, "-m", *[arg.replace("{module}", module) for arg in worker_args]],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sys.path.insert(0, str(tmp))
    try:
        yield __import__(module)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        redis_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(send: Callable[[str, int], Any], get: Callable[[Any], Any], count: int, rounds: int) -> dict[str, Any]:
    """Submit ``count`` inputs, collect every result; then ``rounds`` single round trips."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the worker is up when a task comes back
        try:
            get(send("noop", 0))
            break
        except Exception:
            time.sleep(0.5)
    out: dict[str, Any] = {}
    for name in ("noop", "work"):
        started = time.perf_counter()
        handles = [send(name, i) for i in range(count)]
        assert [get(h) for h in handles] == list(range(count))
        out[f"{name}_per_s"] = count / (time.perf_counter() - started)
    latencies = []
    for _ in range(rounds):
        started = time.perf_counter()
        get(send("noop", 1))
        latencies.append((time.perf_counter() - started) * 1000)
    out["round_trip_ms"] = latencies
    return out


def celery_numbers(count: int, rounds: int) -> dict[str, Any] | None:
    try:
        import celery  # type: ignore[import-not-found]  # noqa: F401
        import redis  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("celery: not installed (pip install celery redis) - skipped")
        return None
    cpus = str(os.cpu_count() or 2)
    args = ["celery", "-A", "{module}", "worker", "--concurrency", cpus, "--loglevel", "WARNING", "--pool", "prefork"]
    with _redis_peer("celery", CELERY_TASKS, args) as peer:
        if peer is None:
            return None
        return _measure(lambda name, i: getattr(peer, name).delay(i), lambda r: r.get(timeout=600), count, rounds)


def dramatiq_numbers(count: int, rounds: int) -> dict[str, Any] | None:
    """Dramatiq with its Redis broker and result backend: one process per core, 8 threads each."""
    try:
        import dramatiq  # type: ignore[import-not-found]  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        print("dramatiq: not installed (pip install 'dramatiq[redis]') - skipped")
        return None
    cpus = str(os.cpu_count() or 2)
    args = ["dramatiq", "{module}", "--processes", cpus, "--threads", "8"]
    with _redis_peer("dramatiq", DRAMATIQ_TASKS, args) as peer:
        if peer is None:
            return None
        return _measure(
            lambda name, i: getattr(peer, name).send(i),
            lambda message: message.get_result(block=True, timeout=600_000),
            count,
            rounds,
        )


PEERS: tuple[tuple[str, Callable[[int, int], dict[str, Any] | None]], ...] = (
    ("ray", ray_numbers),
    ("celery", celery_numbers),
    ("dramatiq", dramatiq_numbers),
)
