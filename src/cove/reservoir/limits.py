"""Traffic limits: requests/s and bytes/s per upload token and per client address.

A client that sends a valid upload token is limited as that token (however
many machines share it); any other client as its address. Each has two token
buckets: requests (a request past the limit gets ``429`` with ``Retry-After``)
and bytes (a download past the limit is slowed down, never failed). Buckets
hold ``burst`` seconds' worth, so short bursts pass at full speed.

Limits are this site's own setting (``cove reservoir limits set``), kept in
the database's ``meta`` table, not an event: bundles do not carry them. A
running server reads them again every few seconds. All limits are off
(zero) by default.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from .errors import ReservoirError

if TYPE_CHECKING:
    from .store import Store

META_KEY = "limits"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-second rates; 0 turns a limit off."""

    token_requests: float = 0.0
    token_bytes: float = 0.0
    address_requests: float = 0.0
    address_bytes: float = 0.0
    burst: float = 2.0  # seconds' worth of requests or bytes a bucket holds

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or value < 0:
                raise ReservoirError(f"limit {field.name} must be a number >= 0, not {value!r}")
        if self.burst <= 0:
            raise ReservoirError("limit burst must be more than 0 seconds")

    @property
    def active(self) -> bool:
        return any((self.token_requests, self.token_bytes, self.address_requests, self.address_bytes))

    @classmethod
    def from_json(cls, data: Any) -> Limits:
        if not isinstance(data, dict):
            raise ReservoirError("stored limits are malformed")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ReservoirError(f"unknown limit {sorted(unknown)[0]!r}")
        return cls(**{k: float(v) for k, v in data.items()})

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if not self.active:
            return "off"
        parts = []
        for who in ("token", "address"):
            rps, bps = getattr(self, f"{who}_requests"), getattr(self, f"{who}_bytes")
            if rps or bps:
                each = [f"{rps:g} req/s" if rps else "", f"{_human(bps)}/s" if bps else ""]
                parts.append(f"per {who}: " + ", ".join(p for p in each if p))
        return "; ".join(parts) + f" (burst {self.burst:g} s)"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:g}"


def current(store: Store) -> Limits:
    return read(store.get_meta(META_KEY))


def read(text: str | None) -> Limits:
    return Limits.from_json(json.loads(text)) if text else Limits()


def set_limits(store: Store, limits: Limits) -> None:
    store.set_meta(META_KEY, json.dumps(limits.to_json(), sort_keys=True))


class Bucket:
    """A token bucket: ``level`` units available now, refilled at ``rate`` per second up to ``capacity``."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity, self.level, self.stamp = rate, capacity, capacity, now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_take(self, amount: float, now: float) -> float:
        """Take ``amount`` if available and return 0, else take nothing and return the seconds to wait."""
        self._refill(now)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` (going into debt) and return how long to wait before using it."""
        self._refill(now)
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.level >= self.capacity
