"""Bearer-token authentication with a short-lived cache.

The hot path must not query the database per request; a revoked token stops
working here at once and on other gateways within ``ttl`` seconds. When an
entry expires under load, the requests that arrive meanwhile share one lookup
instead of each sending its own (dozens of concurrent puts on one token would
otherwise all query the store at the same moment).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..store import Principal, Store, session_principal
from ._errors import ApiError


class Authenticator:
    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}
        self._workspaces: dict[str, tuple[tuple[str, str], float]] = {}  # name: ((id, name), expiry)
        self.on_forget: list[Callable[[], None]] = []  # told when every cached answer is dropped (the native front)

    async def principal(self, authorization: str | None, *, metrics_reader: bool = False) -> Principal:
        """Who the header's token speaks for; a ``metrics`` token only where ``metrics_reader`` says so.

        A metrics token is what a Prometheus scrape config holds: it reads every
        workspace's series on ``/metrics`` and can do nothing else.
        """
        if not authorization:
            raise ApiError(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise ApiError(401, "Authorization header must be 'Bearer <token>'")
        now = time.monotonic()
        cached = self._cache.get(secret)
        if cached is not None and cached[1] > now:
            found = cached[0]
        else:
            found = await self._lookup(secret, self._store.authenticate)
        if found is None:
            raise ApiError(401, "invalid or revoked token")
        if found.role == "metrics" and not metrics_reader:
            raise ApiError(403, "a metrics token may only read /metrics")
        return found

    async def workspace(self, name: str) -> tuple[str, str]:
        """The id and name of the workspace a call without a token reaches (the default), cached like a token.

        ``NotFound`` when it does not exist.
        """
        known = self.cached_workspace(name)
        if known is not None:
            return known
        row = await self._store.get_workspace(name)
        self._workspaces[name] = ((row.id, row.name), time.monotonic() + self._ttl)
        return row.id, row.name

    def cached_workspace(self, name: str) -> tuple[str, str] | None:
        """:meth:`workspace` when it is cached; else None."""
        hit = self._workspaces.get(name)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def cached_until(self, authorization: bytes) -> float:
        """The monotonic time until which :meth:`cached` answers for this header as it does now (0: not cached)."""
        hit = self._hit(authorization)
        return hit[1] if hit is not None else 0.0

    def workspace_cached_until(self, name: str) -> float:
        """Alike, for :meth:`cached_workspace`."""
        hit = self._workspaces.get(name)
        return hit[1] if hit is not None else 0.0

    async def refresh(self, authorization: bytes) -> Principal | None:
        """Read a ``Bearer`` header's token from the store again, cached anew even while its entry is fresh.

        What the native front serves is valid as long as this cache says: it
        is read again ahead of the expiry so the front never serves a lapsed
        entry, nor hands its callers here for the gateway to read it.
        """
        secret = _bearer_secret(authorization)
        return await self._lookup(secret, self._store.authenticate) if secret else None

    def cached(self, authorization: bytes) -> Principal | None:
        """What :meth:`principal` answers for a header whose token is cached and may call (the express lane's).

        None when :meth:`principal` must decide: the store has to be asked, or the answer is an error.
        """
        hit = self._hit(authorization)
        if hit is None or hit[0] is None or hit[1] <= time.monotonic() or hit[0].role == "metrics":
            return None
        return hit[0]

    def _hit(self, authorization: bytes) -> tuple[Principal | None, float] | None:
        """The cache entry of a ``Bearer`` header's token, expired or not; None for none or another scheme."""
        secret = _bearer_secret(authorization)
        return None if secret is None else self._cache.get(secret)

    async def session(self, secret: str) -> Principal:
        """Who a dashboard session cookie speaks for (its token, in the session's workspace), cached alike."""
        key = "session " + secret  # a token's secret holds no space: the two never share a cache entry
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            found = cached[0]
        else:
            found = await self._lookup(key, lambda _: session_principal(self._store, secret))
        if found is None:
            raise ApiError(401, "the session has ended or is invalid: sign in again")
        return found

    async def _lookup(self, secret: str, query: Callable[[str], Awaitable[Principal | None]]) -> Principal | None:
        """One store query per secret at a time; concurrent callers await the same answer."""
        pending = self._lookups.get(secret)
        if pending is None:
            pending = asyncio.ensure_future(query(secret))
            self._lookups[secret] = pending
            pending.add_done_callback(lambda done: self._remember(secret, done))
        return await asyncio.shield(pending)  # one caller giving up does not cancel the others' lookup

    def _remember(self, secret: str, done: asyncio.Future[Principal | None]) -> None:
        if self._lookups.get(secret) is not done:
            return  # forgotten meanwhile (a token was revoked): what it found is not cached
        del self._lookups[secret]
        if done.cancelled() or done.exception() is not None:
            return  # not cached: the next request asks the store again
        if len(self._cache) > 10_000:
            self._cache.clear()
            for listener in self.on_forget:
                listener()
        self._cache[secret] = (done.result(), time.monotonic() + self._ttl)

    def forget(self) -> None:
        """Drop cached answers, e.g. after a token was revoked here."""
        self._cache.clear()
        self._lookups.clear()
        self._workspaces.clear()
        for listener in self.on_forget:
            listener()


def _bearer_secret(authorization: bytes) -> str | None:
    """The token of a ``Bearer`` header (the cache's key), or None for another scheme."""
    scheme, _, secret = authorization.partition(b" ")
    return secret.strip().decode("latin-1") if scheme.lower() == b"bearer" else None
