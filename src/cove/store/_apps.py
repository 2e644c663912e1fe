"""Apps: the deployments deployed together, and the ephemeral apps of scripts' runs.

A deployment version belongs to the app it was deployed in (``Deployment.app_id``);
the name's live version decides who owns the name (``Store.create_deployment``).
An ephemeral app lives as long as its client's heartbeats come: the gateway's
leader stops it once they stop (:func:`stale_ephemeral_apps`), and its client
stops it on the way out (:func:`stop_app`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..exceptions import Conflict
from . import _models as m
from ._ids import new_id
from ._store import Principal, Store


async def create_app(store: Store, who: Principal, name: str, *, ephemeral: bool, source: str | None) -> m.App:
    """A new app named ``name``; ``Conflict`` when the workspace has one of that name already."""
    now = time.time()
    row = m.App(
        id=new_id("app"),
        workspace_id=who.workspace_id,
        name=name,
        source=source,
        ephemeral=ephemeral,
        heartbeat_at=now if ephemeral else None,
        created_at=now,
    )
    try:
        async with store.session() as s, s.begin():
            s.add(row)
            Store._audit(s, who, "app.create", name, {"ephemeral": ephemeral, "source": source})
    except IntegrityError:
        raise Conflict(f"app {name!r} exists already") from None
    return row


async def find_app(store: Store, workspace_id: str, ref: str) -> m.App | None:
    """The workspace's app with id or name ``ref``."""
    async with store.session() as s:
        return await s.scalar(
            select(m.App).where(m.App.workspace_id == workspace_id, or_(m.App.id == ref, m.App.name == ref))
        )


async def list_apps(store: Store, workspace_id: str, *, include_stopped: bool = False) -> Sequence[m.App]:
    query = select(m.App).where(m.App.workspace_id == workspace_id)
    if not include_stopped:
        query = query.where(m.App.stopped_at.is_(None))
    async with store.session() as s:
        return (await s.scalars(query.order_by(m.App.name))).all()


async def heartbeat_app(store: Store, workspace_id: str, app_id: str) -> float | None:
    """Record that an ephemeral app's client is alive; None when the app has ended (or is not one)."""
    now = time.time()
    async with store.session() as s, s.begin():
        result = await s.execute(
            update(m.App)
            .where(
                m.App.id == app_id,
                m.App.workspace_id == workspace_id,
                m.App.ephemeral.is_(True),
                m.App.stopped_at.is_(None),
            )
            .values(heartbeat_at=now)
        )
        return now if result.rowcount else None  # type: ignore[attr-defined]


async def stale_ephemeral_apps(store: Store, older_than: float) -> Sequence[m.App]:
    """Live ephemeral apps whose last heartbeat is before ``older_than`` (a time.time())."""
    async with store.session() as s:
        rows = await s.scalars(
            select(m.App).where(
                m.App.ephemeral.is_(True),
                m.App.stopped_at.is_(None),
                or_(
                    m.App.heartbeat_at < older_than,
                    m.App.heartbeat_at.is_(None) & (m.App.created_at < older_than),
                ),
            )
        )
        return rows.all()


async def stop_app(store: Store, who: Principal | None, app: m.App, reason: str) -> list[m.Deployment]:
    """Stop every version that belongs to ``app``; an ephemeral app ends with them and its versions are deleted.

    Versions of the same names in other apps (a name moved away with
    ``--replace``, or older versions before the app took a free name) stay as they are.
    """
    now = time.time()
    async with store.session() as s, s.begin():
        rows = (
            await s.scalars(select(m.Deployment).where(m.Deployment.app_id == app.id, m.Deployment.state != "deleted"))
        ).all()
        for row in rows:
            if row.state == "active" or app.ephemeral:
                row.state = "deleted" if app.ephemeral else "stopped"
                row.stopped_at = row.stopped_at or now
        if app.ephemeral:
            await s.execute(update(m.App).where(m.App.id == app.id).values(stopped_at=now))
        Store._audit(s, who, "app.stop", app.name, {"reason": reason}, workspace_id=app.workspace_id)
    return list(rows)
