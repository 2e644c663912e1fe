"""The gateways of a cluster as the database knows them, and the values they must all agree on.

Each gateway renews its own row (its id, the URL peers reach it at) with the
database's clock, as the lease does; a row not renewed for a few seconds
belongs to a gateway that is gone. Gateways share no folder, so these rows
are how one finds another that holds a file it lacks.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from . import _models as m
from ._leases import _now
from ._store import Store


async def announce_gateway(store: Store, gateway_id: str, url: str) -> None:
    """Insert or renew this gateway's row (``seen_at`` is the database's time)."""
    table = m.GatewayRow
    async with store.session() as s, s.begin():
        result = await s.execute(update(table).where(table.id == gateway_id).values(url=url, seen_at=_now(store)))
        if not result.rowcount:  # type: ignore[attr-defined]
            now = (await s.execute(select(_now(store)))).scalar_one()
            s.add(table(id=gateway_id, url=url, seen_at=float(now)))


async def live_gateway_urls(store: Store, within_seconds: float, but: str) -> list[str]:
    """The URLs of the gateways renewed in the last ``within_seconds``, other than ``but``, newest first."""
    table = m.GatewayRow
    async with store.session() as s:
        rows = await s.execute(
            select(table.url)
            .where(table.id != but, table.seen_at > _now(store) - within_seconds)
            .order_by(table.seen_at.desc())
        )
        return [str(url) for url in rows.scalars().all()]


async def forget_gateway(store: Store, gateway_id: str) -> None:
    """A gateway stopping cleanly takes its row along (a crashed one's row simply ages out)."""
    async with store.session() as s, s.begin():
        await s.execute(delete(m.GatewayRow).where(m.GatewayRow.id == gateway_id))


async def claim_value(store: Store, name: str, value: str) -> str:
    """The cluster's value of ``name``: ``value`` if this is the first gateway to set it, else the one stored."""
    async with store.session() as s:
        stored = await s.get(m.ClusterValue, name)
        if stored is not None:
            return stored.value
    try:
        async with store.session() as s, s.begin():
            s.add(m.ClusterValue(name=name, value=value))
        return value
    except IntegrityError:  # another gateway set it in between: theirs stands
        async with store.session() as s:
            stored = await s.get(m.ClusterValue, name)
            assert stored is not None
            return stored.value


async def code_data(store: Store, code_hash: str) -> bytes | None:
    """A code archive kept in the database (small ones on PostgreSQL), else None."""
    async with store.session() as s:
        row = await s.execute(select(m.CodeObject.data).where(m.CodeObject.hash == code_hash))
        data = row.scalar_one_or_none()
        return bytes(data) if data is not None else None
