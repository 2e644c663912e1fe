"""Leases in the database: which gateway runs the scheduler, and where it takes requests.

Time is the database's own clock on PostgreSQL, so gateways whose clocks
disagree still agree on when a lease has expired. Taking a lease is one
conditional UPDATE: it succeeds only for the holder or once the lease has
lapsed, so two gateways can never both hold it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update

from . import _models as m
from ._store import Store

SCHEDULER = "scheduler"


@dataclasses.dataclass(frozen=True)
class LeaseView:
    """A lease as read: who holds it, where it takes requests, and until when (database time)."""

    name: str
    holder: str | None
    url: str | None
    epoch: int
    expires_at: float
    now: float

    @property
    def live(self) -> bool:
        return self.holder is not None and self.expires_at > self.now


def _now(store: Store) -> Any:
    if store.is_postgres:
        return func.extract("epoch", func.clock_timestamp())
    return literal(time.time())


async def take_lease(store: Store, holder: str, url: str, ttl: float, name: str = SCHEDULER) -> bool:
    """Take the lease or renew it; True while ``holder`` has it for the next ``ttl`` seconds."""
    table = m.ClusterLease
    now = _now(store)
    query = (
        update(table)
        .where(table.name == name, or_(table.holder == holder, table.holder.is_(None), table.expires_at < now))
        .values(
            holder=holder,
            url=url,
            expires_at=now + ttl,
            epoch=case((table.holder == holder, table.epoch), else_=table.epoch + 1),
        )
    )
    async with store.session() as s, s.begin():
        result = await s.execute(query)
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def read_lease(store: Store, name: str = SCHEDULER) -> LeaseView | None:
    table = m.ClusterLease
    async with store.session() as s:
        row = (
            await s.execute(
                select(table.name, table.holder, table.url, table.epoch, table.expires_at, _now(store)).where(
                    table.name == name
                )
            )
        ).first()
    if row is None:
        return None
    return LeaseView(row[0], row[1], row[2], int(row[3]), float(row[4]), float(row[5]))


async def release_lease(store: Store, holder: str, name: str = SCHEDULER) -> None:
    """Give the lease up at once (a clean shutdown), so another gateway need not wait for it to lapse."""
    table = m.ClusterLease
    async with store.session() as s, s.begin():
        await s.execute(update(table).where(table.name == name, table.holder == holder).values(expires_at=0.0))
