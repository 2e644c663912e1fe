"""Audit entries for changes made outside the store's own writes (a task retried by the gateway)."""

from __future__ import annotations

from typing import Any

from ._store import Principal, Store


async def record_audit(store: Store, who: Principal, action: str, target: str, details: dict[str, Any]) -> None:
    """One audit entry in ``who``'s workspace, under its token: the change was already made."""
    async with store.session() as s, s.begin():
        Store._audit(s, who, action, target, details)
