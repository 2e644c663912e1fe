"""The ready containers and where they listen: what a gateway that does not lead relays requests to.

The leader's scheduler writes each container's state and address behind it
(``Scheduler._persist``); other gateways read this list a few times a second
rather than once per request.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select

from . import _models as m
from ._store import Store


@dataclasses.dataclass(frozen=True)
class ReadyContainer:
    """One container that answers requests now, at ``address`` (``tcp:HOST:PORT`` or ``unix:PATH``)."""

    id: str
    deployment_id: str
    address: str


async def ready_containers(store: Store) -> list[ReadyContainer]:
    """Every container in state ``ready`` that has an address, oldest first."""
    table = m.Container
    query = (
        select(table.id, table.deployment_id, table.address)
        .where(table.state == "ready", table.address.is_not(None))
        .order_by(table.created_at)
    )
    async with store.session() as s:
        rows = (await s.execute(query)).all()
    return [ReadyContainer(str(row[0]), str(row[1]), str(row[2])) for row in rows]


LIVE_STATES = ("pending", "listening", "ready")  # a container that holds its cpu and memory on a worker


async def live_containers(store: Store, workspace_id: str) -> dict[str, int]:
    """How many containers of each deployment of the workspace hold resources now (what its quota counts)."""
    table = m.Container
    query = (
        select(table.deployment_id, func.count())
        .where(table.workspace_id == workspace_id, table.state.in_(LIVE_STATES))
        .group_by(table.deployment_id)
    )
    async with store.session() as s:
        rows = (await s.execute(query)).all()
    return {str(row[0]): int(row[1]) for row in rows}
