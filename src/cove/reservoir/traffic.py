"""What the server does around each request for operators: usage counts, traffic limits, /stats and /metrics.

One object the server calls at a few points (count a page or a download,
admit a request, pace a transfer), so the serving code stays about serving.
Clients are named by their upload token when they send one (basic auth, the
way pip and uv send credentials), else counted as anonymous (empty token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import stats, tokens
from .errors import ReservoirError
from .limits import META_KEY, Bucket, Limits, read
from .stats import DEFAULT_INTERVAL
from .store import Store

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_MAX_TOKEN_CACHE = 4096
_MAX_BUCKETS = 10_000
RELOAD_LIMITS = 5.0  # seconds between looks at the configured limits


@dataclasses.dataclass(frozen=True)
class TrafficConfig:
    """Usage statistics on or off, and how often counters reach the database."""

    stats: bool = True
    flush_interval: float = DEFAULT_INTERVAL


class Traffic:
    def __init__(self, store: Store, reader: sqlite3.Connection, config: TrafficConfig | None = None) -> None:
        self.store = store
        self.reader = reader
        self.config = config or TrafficConfig()
        self.usage = (
            stats.UsageCounter(store.layout.database, self.config.flush_interval) if self.config.stats else None
        )
        self._names: dict[bytes, str] = {}
        self.limits = Limits()
        self.limiting = False  # self.limits.active, kept as a plain flag for the hot path
        self._reload_at = 0.0
        self._request_buckets: dict[tuple[str, str], Bucket] = {}
        self._byte_buckets: dict[tuple[str, str], Bucket] = {}
        self.throttled_seconds = 0.0

    def forget_tokens(self) -> None:
        """Tokens changed (created or revoked): look them up again."""
        self._names.clear()

    def token(self, scope: Scope) -> str:
        """The name of the upload token the client sent, or '' (none, or not a valid one)."""
        auth = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                break
        if auth is None:
            return ""
        try:
            return self._names[auth]
        except KeyError:
            pass
        password = tokens.password_from_basic(auth)
        found = (tokens.check(self.store, password) if password else None) or ""
        if len(self._names) >= _MAX_TOKEN_CACHE:
            self._names.clear()
        self._names[auth] = found
        return found

    def count(self, kind: str, index: str, project: str, filename: str, scope: Scope, size: int) -> None:
        if self.usage is not None:
            self.usage.count(kind, index, project, filename, self.token(scope), size)

    # -- limits ----------------------------------------------------------------------------------------------

    def retry_after(self, scope: Scope) -> float | None:
        """None when the request may go on, else the seconds its client must wait (it gets a 429)."""
        now = time.monotonic()
        if now >= self._reload_at:
            self._reload(now)
        if not self.limiting:
            return None
        who = self._who(scope)
        rate = self.limits.token_requests if who[0] == "token" else self.limits.address_requests
        if not rate:
            return None
        bucket = self._bucket(self._request_buckets, who, rate, max(1.0, rate * self.limits.burst), now)
        wait = bucket.try_take(1, now)
        return wait if wait > 0 else None

    async def too_many(self, scope: Scope, send: Send, wait: float) -> None:
        who = self._who(scope)
        self.count("limited", who[0], "", "", scope, 0)
        seconds = str(max(1, math.ceil(wait)))
        await _answer(
            send,
            429,
            b"text/plain; charset=utf-8",
            f"too many requests from this {who[0]}; retry in {seconds} s\n".encode(),
            [(b"retry-after", seconds.encode())],
        )

    def pacer(self, scope: Scope) -> Callable[[int], Awaitable[None]] | None:
        """A function that delays each chunk of a transfer to the client's bytes/s limit; None when unlimited."""
        if not self.limiting:
            return None
        who = self._who(scope)
        rate = self.limits.token_bytes if who[0] == "token" else self.limits.address_bytes
        if not rate:
            return None
        now = time.monotonic()
        bucket = self._bucket(self._byte_buckets, who, rate, rate * self.limits.burst, now)

        async def pace(size: int) -> None:
            wait = bucket.take(size, time.monotonic())
            if wait > 0:
                self.throttled_seconds += wait
                await asyncio.sleep(wait)

        return pace

    def _who(self, scope: Scope) -> tuple[str, str]:
        name = self.token(scope)
        if name:
            return "token", name
        client = scope.get("client")
        return "address", str(client[0]) if client else "unknown"

    def _bucket(
        self, buckets: dict[tuple[str, str], Bucket], who: tuple[str, str], rate: float, capacity: float, now: float
    ) -> Bucket:
        bucket = buckets.get(who)
        if bucket is None:
            if len(buckets) >= _MAX_BUCKETS:  # forget idle clients (their buckets are full again)
                for key in [k for k, b in buckets.items() if b.full(now)]:
                    del buckets[key]
            bucket = buckets[who] = Bucket(rate, capacity, now)
        return bucket

    def _reload(self, now: float) -> None:
        self._reload_at = now + RELOAD_LIMITS
        row = self.reader.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
        try:
            limits = read(row[0] if row else None)
        except (ReservoirError, ValueError):
            return  # keep the previous limits rather than drop them over a bad row
        if limits != self.limits:
            self.limits = limits
            self.limiting = limits.active
            self._request_buckets.clear()
            self._byte_buckets.clear()

    # -- /stats and /metrics ---------------------------------------------------------------------------------

    async def serve(self, path: str, scope: Scope, send: Send) -> None:
        if path == "/metrics":
            await self.metrics(send)
        else:
            await self.stats_page(scope, send)

    async def stats_page(self, scope: Scope, send: Send) -> None:
        """``GET /stats?days=7&by=project&kind=file`` as JSON, for holders of an upload token."""
        from urllib.parse import parse_qs

        from .errors import ReservoirError

        if not self.token(scope):
            return await _answer(
                send,
                401,
                b"text/plain; charset=utf-8",
                b"usage statistics need an upload token (basic auth, user __token__)\n",
                [(b"www-authenticate", b'Basic realm="cove-reservoir"')],
            )
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            days = int(query.get("days", ["7"])[0])
            kind = query.get("kind", ["file"])[0]
            if self.usage is not None:
                await asyncio.to_thread(self.usage.flush)
            body = stats.report(
                self.reader,
                days=days,
                by=query.get("by", ["project"])[0],
                kind=None if kind == "all" else kind,
                project=query.get("project", [None])[0],
            )
        except ValueError:
            return await _answer(send, 400, b"text/plain; charset=utf-8", b"days must be a whole number\n")
        except ReservoirError as exc:
            return await _answer(send, exc.status, b"text/plain; charset=utf-8", (exc.message + "\n").encode())
        body["limits"] = self.limits_summary()
        await _answer(send, 200, b"application/json", json.dumps(body, sort_keys=True).encode())

    async def metrics(self, send: Send) -> None:
        """Prometheus counters of this process (aggregates only: no names, no tokens)."""
        if self.usage is None:
            body = b"# usage statistics are off on this server\n"
        else:
            body = stats.prometheus(self.usage, self.limit_metrics())
        await _answer(send, 200, b"text/plain; version=0.0.4; charset=utf-8", body)

    def limits_summary(self) -> dict[str, Any]:
        return self.limits.to_json() | {"active": self.limits.active, "throttled_seconds": self.throttled_seconds}

    def limit_metrics(self) -> list[str]:
        return [
            "# HELP cove_reservoir_throttled_seconds_total Seconds downloads were delayed by bytes/s limits.",
            "# TYPE cove_reservoir_throttled_seconds_total counter",
            f"cove_reservoir_throttled_seconds_total {self.throttled_seconds:.3f}",
        ]

    def close(self) -> None:
        if self.usage is not None:
            self.usage.close()


async def _answer(
    send: Send, status: int, ctype: bytes, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
