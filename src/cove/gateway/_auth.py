"""Bearer-token authentication with a short-lived cache.

The hot path must not query the database per request; a revoked token stops
working here at once and on other gateways within ``ttl`` seconds.
"""

from __future__ import annotations

import time

from ..store import Principal, Store
from ._errors import ApiError


class Authenticator:
    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def principal(self, authorization: str | None) -> Principal:
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
            found = await self._store.authenticate(secret)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[secret] = (found, now + self._ttl)
        if found is None:
            raise ApiError(401, "invalid or revoked token")
        return found

    def forget(self) -> None:
        """Drop cached answers, e.g. after a token was revoked here."""
        self._cache.clear()
