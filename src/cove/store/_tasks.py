"""Durable task rows, written in batches.

Every accepted input is a row before the caller hears "accepted"; state
changes after that (running, retried, finished) are queued and written in
one transaction per batch, so a ``.map`` of thousands of inputs costs a few
commits, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import _models as m
from ._driver import placeholders
from ._idempotency import KeyClaim, KeyHolder, claim_key
from ._store import Store

log = logging.getLogger("cove.store.tasks")

TERMINAL_STATES = ("COMPLETE", "FAILED", "CANCELLED", "EXPIRED")
OPEN_STATES = ("PENDING", "RUNNING")
_UPDATE_FIELDS = (
    "state",
    "result",
    "error",
    "attempts",
    "attempt",
    "not_before",
    "started_at",
    "finished_at",
    "container_id",
    "map_seq",
)

# LISTEN/NOTIFY channels (PostgreSQL): a task was accepted by a gateway that does not lead
# (payload: its deployment id), and tasks finished (payload: their ids, comma-separated).
NEW_TASKS_CHANNEL = "cove_tasks_new"
DONE_TASKS_CHANNEL = "cove_tasks_done"
# Maps whose outputs grew (payload: their ids, comma-separated): gateways long-polling them read the store again.
MAPS_DONE_CHANNEL = "cove_maps_done"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_IDS_PER_NOTIFY = 150  # 40-character ids: well under PostgreSQL's 8000-byte payload limit

_table: Table = m.Task.__table__  # type: ignore[assignment]
# A new row has no owner yet (the writer adds its own) and no place among a map's outputs.
_INSERT_FIELDS = tuple(column.name for column in _table.columns if column.name not in ("owner", "map_seq"))
_JSON_FIELDS = frozenset(column.name for column in _table.columns if isinstance(column.type, JSON))


class _DriverSql:
    """Task INSERT/UPDATE as the driver's own SQL with positional rows.

    The writer sends them with ``exec_driver_sql``: no statement compilation
    and no per-row bind processing, which at thousands of tasks a second is
    most of what a SQLAlchemy Core executemany costs in the gateway.
    """

    def __init__(self, paramstyle: str, owner: str | None) -> None:
        self.owner = owner
        columns = [*_INSERT_FIELDS, "owner"]
        marks = placeholders(paramstyle, len(columns))
        self.insert = f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join(marks)})"
        marks = placeholders(paramstyle, len(_UPDATE_FIELDS) + 1)
        sets = ", ".join(f"{name} = {mark}" for name, mark in zip(_UPDATE_FIELDS, marks, strict=False))
        self.update = f"UPDATE tasks SET {sets} WHERE id = {marks[-1]}"

    def insert_row(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return (*(_column_value(name, row.get(name)) for name in _INSERT_FIELDS), self.owner)

    @staticmethod
    def update_row(change: tuple[str, dict[str, Any]]) -> tuple[Any, ...]:
        task_id, fields = change
        return (*(_column_value(name, fields[name]) for name in _UPDATE_FIELDS), task_id)


def _column_value(name: str, value: Any) -> Any:
    """A value as its column stores it: JSON columns hold JSON text.

    SQLAlchemy's JSON type writes None as 'null' too. The empty values every
    new task carries skip the encoder.
    """
    if name not in _JSON_FIELDS:
        return value
    if value is None:
        return "null"
    if value == []:
        return "[]"
    return json.dumps(value)


@dataclasses.dataclass(eq=False)
class _KeyedInsert:
    """A task row to insert only if its idempotency key is free; ``holder`` is filled in the batch."""

    row: dict[str, Any]
    claim: KeyClaim
    holder: KeyHolder | None = None


class TaskWriter:
    """Orders and batches task writes; ``insert`` waits for its commit, ``update`` does not."""

    def __init__(self, store: Store, max_batch: int = 2000, owner: str | None = None) -> None:
        self._store = store
        self._max_batch = max_batch
        self._sql = _DriverSql(store.engine.dialect.paramstyle, owner)
        self._notify_done = store.is_postgres
        self._ops: asyncio.Queue[tuple[str, Any, asyncio.Future[None] | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cove-task-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._release()  # it may have been cancelled mid-batch: flush on a fresh one
        await self._flush_pending()
        await self._release()

    async def _connection(self) -> AsyncConnection:
        """The writer's own connection, kept between batches.

        Taking one from the pool per batch costs a checkout and, on return, a
        rollback: each a round trip to the driver's thread (SQLite) or server.
        """
        if self._conn is None:
            self._conn = await self._store.engine.connect()
        return self._conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def insert(self, rows: Sequence[dict[str, Any]], *, durable: bool = True) -> None:
        """Queue new rows; with ``durable``, return only once they are committed."""
        done: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if durable else None
        self._ops.put_nowait(("insert", list(rows), done))
        if done is not None:
            await done

    async def insert_keyed(self, row: dict[str, Any], claim: KeyClaim) -> KeyHolder:
        """Commit ``row`` under its idempotency key, unless the key already holds a task.

        Returns the key's holder once committed: ``row``'s task when it was
        inserted, else the task an earlier request made (and nothing is inserted).
        """
        keyed = _KeyedInsert(row, claim)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.put_nowait(("keyed", keyed, done))
        await done
        assert keyed.holder is not None
        return keyed.holder

    def insert_nowait(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue new rows without waiting for their commit (ordered before later updates)."""
        self._ops.put_nowait(("insert", list(rows), None))

    def update(self, task_id: str, *, map_seq: int | None = None, map_id: str | None = None, **fields: Any) -> None:
        """Queue a state change; all other ``_UPDATE_FIELDS`` must be given (the row's full new state).

        ``map_id`` is not written: it names the map whose gateways are told (NOTIFY) that its outputs grew.
        """
        fields["map_seq"] = map_seq
        if map_id is not None:
            fields["map_id"] = map_id
        self._ops.put_nowait(("update", (task_id, fields), None))

    async def _run(self) -> None:
        while True:
            first = await self._ops.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._ops.empty():
                batch.append(self._ops.get_nowait())
            await self._write(batch)

    async def _flush_pending(self) -> None:
        batch = []
        while not self._ops.empty():
            batch.append(self._ops.get_nowait())
        if batch:
            await self._write(batch)

    async def _write(self, batch: list[tuple[str, Any, asyncio.Future[None] | None]]) -> None:
        # An update carries the row's full new state, so only a task's last one in the batch
        # needs writing (a RUNNING then COMPLETE pair becomes one row write); it stays after
        # the row's insert, which always precedes every update of it.
        last = {op[1][0]: n for n, op in enumerate(batch) if op[0] == "update"}
        try:
            conn = await self._connection()
            async with conn.begin():
                group: list[Any] = []
                kind = None
                for n, (op, payload, _) in enumerate(batch):
                    if op == "update" and last[payload[0]] != n:
                        continue
                    if op == "keyed":  # its own statements: whether the row goes in depends on the key
                        if group:
                            await self._execute(conn, kind, group)
                        group, kind = [], None
                        await self._insert_keyed(conn, payload)
                        continue
                    if op != kind and group:
                        await self._execute(conn, kind, group)
                        group = []
                    kind = op
                    group.extend(payload) if op == "insert" else group.append(payload)
                if group:
                    await self._execute(conn, kind, group)
                if self._notify_done:
                    await _notify_finished(conn, batch)
        except Exception as exc:
            log.exception("writing %d task changes failed", len(batch))
            await self._release()  # a fresh connection for the next batch
            for _, _, done in batch:
                if done is not None and not done.done():
                    done.set_exception(exc)
            return
        for _, _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    async def _insert_keyed(self, conn: AsyncConnection, keyed: _KeyedInsert) -> None:
        keyed.holder = await claim_key(conn, keyed.claim, keyed.row["id"])
        if keyed.holder.task_id == keyed.row["id"]:
            await self._execute(conn, "insert", [keyed.row])

    async def _execute(self, conn: AsyncConnection, kind: str | None, group: list[Any]) -> None:
        if kind == "insert":
            await conn.exec_driver_sql(self._sql.insert, [self._sql.insert_row(row) for row in group])
        else:
            await conn.exec_driver_sql(self._sql.update, [self._sql.update_row(change) for change in group])


async def _notify_finished(conn: Any, batch: list[tuple[str, Any, Any]]) -> None:
    """Tell every gateway which tasks this batch finished; delivered when the batch commits."""
    finished = [op[1] for op in batch if op[0] == "update" and op[1][1].get("state") in TERMINAL_STATES]
    done = [task_id for task_id, _ in finished]
    for start in range(0, len(done), _IDS_PER_NOTIFY):
        chunk = ",".join(done[start : start + _IDS_PER_NOTIFY])
        await conn.execute(_NOTIFY, {"channel": DONE_TASKS_CHANNEL, "payload": chunk})
    maps = sorted({fields["map_id"] for _, fields in finished if fields.get("map_id")})
    for start in range(0, len(maps), _IDS_PER_NOTIFY):
        chunk = ",".join(maps[start : start + _IDS_PER_NOTIFY])
        await conn.execute(_NOTIFY, {"channel": MAPS_DONE_CHANNEL, "payload": chunk})


async def insert_unowned(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Commit tasks no dispatcher holds yet, and wake the leader to claim them.

    A gateway that does not run the scheduler accepts tasks this way: the row
    is durable before the caller hears "accepted", and the leader takes it.
    """
    async with store.engine.begin() as conn:
        await conn.execute(insert(_table), [{**row, "owner": None} for row in rows])
        await _notify_new(store, conn, rows)


async def insert_unowned_keyed(store: Store, row: dict[str, Any], claim: KeyClaim) -> KeyHolder:
    """``insert_unowned`` of one task under an idempotency key: inserted only when the key is free.

    Returns the key's holder: the new task, or the one an earlier request made.
    """
    async with store.engine.begin() as conn:
        holder = await claim_key(conn, claim, row["id"])
        if holder.task_id == row["id"]:
            await conn.execute(insert(_table), [{**row, "owner": None}])
            await _notify_new(store, conn, [row])
    return holder


async def _notify_new(store: Store, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Wake the leader (PostgreSQL) to claim new unowned tasks; delivered when the transaction commits."""
    if store.is_postgres:
        for deployment_id in sorted({row["deployment_id"] for row in rows}):
            await conn.execute(_NOTIFY, {"channel": NEW_TASKS_CHANNEL, "payload": deployment_id})


async def claim_tasks(store: Store, owner: str, *, unowned_only: bool = False) -> list[m.Task]:
    """Take open tasks for ``owner``'s dispatcher; returns them oldest first.

    All open tasks not already ``owner``'s when a gateway starts leading (what
    the previous leader held died with it), or only the unclaimed PENDING ones
    while it leads. Rows another transaction holds are skipped (``FOR UPDATE
    SKIP LOCKED`` on PostgreSQL), so two claimers never take the same task.
    """
    if unowned_only:
        which = select(m.Task.id).where(m.Task.owner.is_(None), m.Task.state == "PENDING")
    else:
        which = select(m.Task.id).where(
            m.Task.state.in_(OPEN_STATES), or_(m.Task.owner.is_(None), m.Task.owner != owner)
        )
    query = (
        update(m.Task)
        .where(m.Task.id.in_(which.with_for_update(skip_locked=True).scalar_subquery()))
        .values(owner=owner)
        .returning(m.Task)
    )
    async with store.session() as s, s.begin():
        rows = list((await s.scalars(query, execution_options={"synchronize_session": False})).all())
    rows.sort(key=lambda row: (row.created_at, row.map_index or 0))
    return rows


async def count_pending(store: Store, deployment_id: str) -> int:
    """How many of a deployment's tasks wait to run (``max_pending_tasks`` as the store sees it)."""
    query = (
        select(func.count()).select_from(m.Task).where(m.Task.deployment_id == deployment_id, m.Task.state == "PENDING")
    )
    async with store.session() as s:
        return int(await s.scalar(query) or 0)


async def get_task(store: Store, task_id: str) -> m.Task | None:
    async with store.session() as s:
        return await s.get(m.Task, task_id)


async def list_tasks(
    store: Store,
    workspace_id: str,
    *,
    state: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[m.Task]:
    """A workspace's tasks, newest first, ``limit`` of them after skipping ``offset`` (a page of a long list)."""
    query = select(m.Task).where(m.Task.workspace_id == workspace_id)
    if state:
        query = query.where(m.Task.state == state)
    if name:
        query = query.where(m.Task.name == name)
    async with store.session() as s:
        return (await s.scalars(query.order_by(m.Task.created_at.desc(), m.Task.id).limit(limit).offset(offset))).all()


async def open_tasks(store: Store) -> Sequence[m.Task]:
    """Tasks that were accepted and not finished when the gateway last stopped."""
    async with store.session() as s:
        return (await s.scalars(select(m.Task).where(m.Task.state.in_(OPEN_STATES)).order_by(m.Task.created_at))).all()


async def finished_map_tasks(store: Store, map_id: str) -> Sequence[m.Task]:
    async with store.session() as s:
        rows = await s.scalars(
            select(m.Task).where(m.Task.map_id == map_id, m.Task.state.in_(TERMINAL_STATES)).order_by(m.Task.map_index)
        )
        return rows.all()
