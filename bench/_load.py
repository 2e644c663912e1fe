"""A small closed-loop HTTP/1.1 load generator over kept-alive connections.

Bounded by request count and time, and aimed only at loopback servers the
benchmark started itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")

    def row(self) -> str:
        return (
            f"c={self.concurrency:<3} {self.rps:>9.0f} req/s  p50 {self.pct(0.5):7.2f} ms  "
            f"p99 {self.pct(0.99):7.2f} ms  errors {self.errors}"
        )


async def _worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    budget: list[int],
    latencies: list[float],
    errors: list[int],
    ok: bytes = b"HTTP/1.1 200",
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length, chunked = 0, False
            for line in head.split(b"\r\n")[1:]:
                lowered = line.lower()
                if lowered.startswith(b"content-length:"):
                    length = int(line[15:])
                elif lowered.startswith(b"transfer-encoding:") and b"chunked" in lowered:
                    chunked = True
            if chunked:
                await _read_chunks(reader)
            else:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if not head.startswith(ok):
                errors[0] += 1
    finally:
        writer.close()


async def _read_chunks(reader: asyncio.StreamReader) -> None:
    """Consume a chunked body (some peers' proxies answer that way) up to its last chunk and trailer."""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)


async def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    max_seconds: float,
    token: str | None = None,
    ok_status: int = 200,
) -> LoadResult:
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    request = (
        (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        + auth
        + b"\r\n"
        + body
    )
    latencies: list[float] = []
    errors = [0]
    budget = [requests]
    started = time.perf_counter()
    deadline = started + max_seconds
    await asyncio.gather(
        *(
            _worker(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                request,
                deadline,
                budget,
                latencies,
                errors,
                b"HTTP/1.1 %d" % ok_status,
            )
            for _ in range(concurrency)
        )
    )
    return LoadResult(concurrency, len(latencies), errors[0], time.perf_counter() - started, tuple(latencies))


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  (n={len(ordered)})"
