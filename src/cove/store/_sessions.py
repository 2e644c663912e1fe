"""Dashboard sessions: a browser's sign-in, stored only as the hash of its cookie.

A session speaks for the token it was opened with, so everything it does goes
through the same checks as that token and lands in the audit log under its id.
Revoking the token ends its sessions at once (the lookup joins the token);
signing out revokes the session alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update

from ..exceptions import NotFound
from . import _models as m
from ._ids import hash_secret, new_id
from ._store import Principal, Store


def new_session_secret() -> str:
    return "cses_" + secrets.token_urlsafe(32)


async def open_session(store: Store, who: Principal, ttl: float) -> tuple[m.Session, str]:
    """A new session for ``who``'s token, acting in its workspace, valid ``ttl`` seconds; audited.

    Sessions that expired or were signed out are deleted on the way (the audit log keeps their story):
    the table holds only live sessions and the ones since the last sign-in, without a timer of its own.
    """
    secret = new_session_secret()
    now = time.time()
    async with store.session() as s, s.begin():
        await s.execute(delete(m.Session).where(or_(m.Session.expires_at <= now, m.Session.revoked_at.is_not(None))))
        row = m.Session(
            id=new_id("ses"),
            secret_hash=hash_secret(secret),
            token_id=who.token_id,
            workspace_id=who.workspace_id,
            created_at=now,
            expires_at=now + ttl,
        )
        s.add(row)
        Store._audit(s, who, "session.open", row.id)
    return row, secret


async def session_principal(store: Store, secret: str) -> Principal | None:
    """Who a live session speaks for: its token's role in the session's workspace; None if it ended."""
    async with store.session() as s:
        found = (
            await s.execute(
                select(m.Session, m.Token, m.Workspace)
                .join(m.Token, m.Token.id == m.Session.token_id)
                .join(m.Workspace, m.Workspace.id == m.Session.workspace_id)
                .where(
                    m.Session.secret_hash == hash_secret(secret),
                    m.Session.revoked_at.is_(None),
                    m.Session.expires_at > time.time(),
                    m.Token.revoked_at.is_(None),
                )
            )
        ).first()
    if found is None:
        return None
    _, token, ws = found
    return Principal(token_id=token.id, workspace_id=ws.id, workspace_name=ws.name, role=token.role)


async def close_session(store: Store, who: Principal, secret: str) -> bool:
    """Revoke the session (sign-out); whether it was live. Audited in the workspace it acted in."""
    async with store.session() as s, s.begin():
        row = await s.scalar(select(m.Session).where(m.Session.secret_hash == hash_secret(secret)))
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = time.time()
        Store._audit(s, who, "session.close", row.id)
    return True


async def switch_session_workspace(store: Store, who: Principal, secret: str, workspace: str) -> m.Workspace:
    """Make the session act in ``workspace`` (the caller checks that ``who`` is an admin); audited there."""
    async with store.session() as s, s.begin():
        ws = await s.scalar(select(m.Workspace).where(m.Workspace.name == workspace))
        if ws is None:
            raise NotFound(f"workspace {workspace!r} does not exist")
        result = await s.execute(
            update(m.Session)
            .where(m.Session.secret_hash == hash_secret(secret), m.Session.revoked_at.is_(None))
            .values(workspace_id=ws.id)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound("the session has ended: sign in again")
        Store._audit(s, who, "session.workspace", workspace, {"from": who.workspace_name}, ws.id)
    return ws


async def list_workspaces(store: Store) -> Sequence[m.Workspace]:
    async with store.session() as s:
        return (await s.scalars(select(m.Workspace).order_by(m.Workspace.name))).all()
