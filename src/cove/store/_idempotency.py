"""Idempotency keys: a put or spawn repeated with its key returns the task the first one made.

A key is claimed in the transaction that inserts its task, so the key and its
task are committed together or not at all. The table's primary key
(workspace, deployment name, key) makes a second claim, from this gateway or
from another one on the same database, find the first claim's task instead of
making its own. Keys older than ``RETENTION_SECONDS`` no longer count: a
claim takes them over, and the leader prunes them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import _models as m
from ._driver import placeholders
from ._store import Store

RETENTION_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


@functools.cache
def _claim_sql(paramstyle: str) -> str:
    """Insert the key, or take over an expired one; RETURNING gives a row only when this claim won.

    In the driver's own SQL (sent with ``exec_driver_sql``): a keyed put pays no
    statement compilation, as an unkeyed one pays none.
    """
    marks = placeholders(paramstyle, 7)
    return (
        "INSERT INTO idempotency_keys AS k"
        " (workspace_id, name, idempotency_key, task_id, request_hash, created_at)"
        f" VALUES ({', '.join(marks[:6])})"
        " ON CONFLICT (workspace_id, name, idempotency_key) DO UPDATE SET"
        " task_id = excluded.task_id, request_hash = excluded.request_hash, created_at = excluded.created_at"
        f" WHERE k.created_at < {marks[6]}"
        " RETURNING task_id"
    )


_HOLDER = text(
    "SELECT task_id, request_hash FROM idempotency_keys"
    " WHERE workspace_id = :workspace_id AND name = :name AND idempotency_key = :key"
)


@dataclasses.dataclass(frozen=True)
class KeyClaim:
    """One request's key, scoped to its workspace and deployment, with a hash of what it asks for."""

    workspace_id: str
    name: str
    key: str
    request_hash: str

    @classmethod
    def of(cls, workspace_id: str, name: str, key: str, fmt: str, body: bytes) -> KeyClaim:
        """The claim for a request whose input is ``body`` in format ``fmt`` (``json`` or ``pickle``)."""
        digest = hashlib.sha256(fmt.encode() + b"\0" + body).hexdigest()
        return cls(workspace_id, name, key, digest)


@dataclasses.dataclass(frozen=True)
class KeyHolder:
    """The task a key stands for, and the hash of the request that made it."""

    task_id: str
    request_hash: str


async def claim_key(conn: AsyncConnection, claim: KeyClaim, task_id: str) -> KeyHolder:
    """Claim ``claim``'s key for ``task_id`` in the caller's transaction; return who holds it now.

    The holder is ``task_id`` when the key was free (or expired): the caller
    then inserts that task in the same transaction. Otherwise it is the task
    an earlier request made; on PostgreSQL a claim racing an uncommitted one
    waits for it, then sees it.
    """
    now = time.time()
    values = (claim.workspace_id, claim.name, claim.key, task_id, claim.request_hash, now, now - RETENTION_SECONDS)
    if (await conn.exec_driver_sql(_claim_sql(conn.dialect.paramstyle), values)).first() is not None:
        return KeyHolder(task_id, claim.request_hash)
    params = {"workspace_id": claim.workspace_id, "name": claim.name, "key": claim.key}
    row = (await conn.execute(_HOLDER, params)).one()
    return KeyHolder(str(row.task_id), str(row.request_hash))


async def prune_keys(store: Store, now: float | None = None) -> int:
    """Delete keys past the retention window; returns how many went."""
    cutoff = (now or time.time()) - RETENTION_SECONDS
    async with store.engine.begin() as conn:
        result = await conn.execute(delete(m.IdempotencyKey).where(m.IdempotencyKey.created_at < cutoff))
    return int(result.rowcount or 0)
