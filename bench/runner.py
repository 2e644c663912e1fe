"""Micro-benchmark of the in-container runner's hot path.

Starts a runner through ProcessRuntime with a no-op handler, then sends
requests over one keep-alive unix-socket connection (and over several
connections in parallel) with a minimal raw-socket client, and prints
requests/s and latency percentiles. The client's own cost is included, so
the runner's overhead per request is at most the p50 shown.

    uv run python bench/runner.py [--requests 20000] [--connections 4]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cove
from cove.runtime import LaunchSpec, ProcessRuntime, open_unix_listener

REQUEST = b'POST /invoke HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"x": 123}'


def _one(sock: socket.socket, buffer: bytearray) -> None:
    sock.sendall(REQUEST)
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            length_at = buffer.find(b"Content-Length: ", 0, head_end) + 16
            length = int(buffer[length_at : buffer.find(b"\r\n", length_at)])
            total = head_end + 4 + length
            if len(buffer) >= total:
                if not buffer.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(bytes(buffer[:total]))
                del buffer[:total]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buffer += chunk


def _client(path: str, count: int, latencies: list[float]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        buffer = bytearray()
        for _ in range(count):
            started = time.perf_counter()
            _one(sock, buffer)
            latencies.append(time.perf_counter() - started)


def _run(path: str, connections: int, per_connection: int) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    threads = [threading.Thread(target=_client, args=(path, per_connection, latencies[i])) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return connections * per_connection / elapsed, sorted(x for part in latencies for x in part)


def _report(label: str, rate: float, latencies: list[float]) -> None:
    p50 = statistics.median(latencies) * 1e6
    p99 = latencies[int(len(latencies) * 0.99)] * 1e6
    print(f"{label:<34} {rate:>9.0f} req/s   p50 {p50:6.1f} µs   p99 {p99:7.1f} µs")


async def _main(requests: int, connections: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cove-bench-") as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        (root / "code" / "app.py").write_text("def handler(x):\n    return {'x': x}\n")
        (root / "pylib").mkdir()
        (root / "pylib" / "cove").symlink_to(Path(cove.__file__).parent)
        spec = LaunchSpec(
            container_id="bench",
            python=Path(sys.executable),
            venv=None,
            code_dir=root / "code",
            work_dir=root / "work",
            pylib_dir=root / "pylib",
            module="app",
            function="handler",
            concurrency=connections,
        )
        path = root / "r.sock"
        listener = open_unix_listener(path)
        handle = await ProcessRuntime().start(spec, listener)
        listener.close()
        assert await handle.wait_ready(), "runner did not start"
        print(f"runner ready: {dict(handle.timings)}")
        try:
            await asyncio.to_thread(_run, str(path), 1, 500)  # warm-up
            rate, latencies = await asyncio.to_thread(_run, str(path), 1, requests)
            _report("1 keep-alive connection", rate, latencies)
            rate, latencies = await asyncio.to_thread(_run, str(path), connections, requests // connections)
            _report(f"{connections} connections (concurrency {connections})", rate, latencies)
        finally:
            await handle.stop(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(_main(args.requests, args.connections))


if __name__ == "__main__":
    main()
