"""Tokens for code running inside containers: one per container, scoped to its workspace.

A container's code calls other deployed functions, task queues and endpoints
of its workspace with the token it was started with. It is an ordinary
``user`` token (never admin, never another workspace), named after the
container so it can be revoked when the container is gone.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update

from . import _models as m
from ._ids import hash_secret, new_id, new_token_secret
from ._store import ACTIVE_CONTAINER_STATES, Store

PREFIX = "container:"


async def create_container_token(store: Store, workspace_id: str, container_id: str) -> str:
    """Mint the token of one container; return its secret (stored only as a hash)."""
    secret = new_token_secret()
    async with store.session() as s, s.begin():
        s.add(
            m.Token(
                id=new_id("tok"),
                workspace_id=workspace_id,
                name=PREFIX + container_id,
                secret_hash=hash_secret(secret),
                role="user",
            )
        )
    return secret


async def revoke_container_tokens(store: Store, container_ids: list[str] | None = None) -> int:
    """Revoke the tokens of the given containers, or (None) of every container no longer active."""
    async with store.session() as s, s.begin():
        query = update(m.Token).where(m.Token.revoked_at.is_(None))
        if container_ids is not None:
            if not container_ids:
                return 0
            query = query.where(m.Token.name.in_([PREFIX + c for c in container_ids]))
        else:
            active = select(m.Container.id).where(m.Container.state.in_(ACTIVE_CONTAINER_STATES))
            live_names = [PREFIX + c for c in (await s.scalars(active)).all()]
            query = query.where(m.Token.name.like(PREFIX + "%"), m.Token.name.not_in(live_names))
        result = await s.execute(query.values(revoked_at=time.time()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def is_container_token(store: Store, token_id: str) -> bool:
    """Whether ``token_id`` was minted for a container: such tokens call code, they never manage tokens."""
    return await token_container(store, token_id) is not None


async def token_container(store: Store, token_id: str) -> str | None:
    """The container a token was minted for, or None for any other token."""
    async with store.session() as s:
        name = await s.scalar(select(m.Token.name).where(m.Token.id == token_id))
    return name[len(PREFIX) :] if name and name.startswith(PREFIX) else None
