"""Queries on secrets. Values arrive and leave encrypted: the store never sees plaintext."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import delete, select

from ..exceptions import NotFound
from . import _models as m
from ._ids import new_id
from ._store import Principal, Store


async def put_secret(store: Store, who: Principal, name: str, keys: list[str], ciphertext: bytes) -> m.Secret:
    """Create the secret, or replace its values (same name, same workspace)."""
    async with store.session() as s, s.begin():
        row = await s.scalar(select(m.Secret).where(m.Secret.workspace_id == who.workspace_id, m.Secret.name == name))
        if row is None:
            row = m.Secret(id=new_id("sec"), workspace_id=who.workspace_id, name=name)
            s.add(row)
            action = "secret.create"
        else:
            action = "secret.update"
        row.keys = sorted(keys)
        row.ciphertext = ciphertext
        row.updated_at = time.time()
        store._audit(s, who, action, name, {"keys": sorted(keys)})  # key names only, never values
    return row


async def list_secrets(store: Store, workspace_id: str) -> Sequence[m.Secret]:
    async with store.session() as s:
        rows = await s.scalars(select(m.Secret).where(m.Secret.workspace_id == workspace_id).order_by(m.Secret.name))
        return rows.all()


async def get_secrets(store: Store, workspace_id: str, names: Sequence[str]) -> dict[str, m.Secret]:
    """The named secrets of one workspace (missing names are simply absent)."""
    if not names:
        return {}
    async with store.session() as s:
        rows = await s.scalars(
            select(m.Secret).where(m.Secret.workspace_id == workspace_id, m.Secret.name.in_(list(names)))
        )
        return {row.name: row for row in rows}


async def delete_secret(store: Store, who: Principal, name: str) -> None:
    async with store.session() as s, s.begin():
        result = await s.execute(
            delete(m.Secret).where(m.Secret.workspace_id == who.workspace_id, m.Secret.name == name)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"secret {name!r} does not exist")
        store._audit(s, who, "secret.delete", name)
