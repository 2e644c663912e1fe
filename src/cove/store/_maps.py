"""``.map`` rows: what lets any gateway take a map's inputs and read its outputs, not only the leader.

A map is a row naming its workspace and deployment; its inputs are task rows
carrying its id and their index. The leader, which runs every input, numbers
each finished one in its order of completion (``map_seq``: 0, 1, 2…), and the
task writer commits those numbers in order, so "the outputs after position
N" is a stable cursor that every gateway reads the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update

from . import _models as m
from ._store import Store
from ._tasks import _NOTIFY, NEW_TASKS_CHANNEL, OPEN_STATES

# The columns an output needs: never the input's arguments.
_OUTPUT_COLUMNS = (
    m.Task.map_index,
    m.Task.map_seq,
    m.Task.state,
    m.Task.result,
    m.Task.error,
    m.Task.attempts,
)


async def insert_map(store: Store, map_id: str, workspace_id: str, deployment_id: str) -> None:
    async with store.session() as s, s.begin():
        s.add(m.Map(id=map_id, workspace_id=workspace_id, deployment_id=deployment_id, cancelled=False))


async def get_map(store: Store, map_id: str) -> m.Map | None:
    async with store.session() as s:
        return await s.get(m.Map, map_id)


async def map_progress(store: Store, map_id: str) -> tuple[int, int]:
    """(inputs submitted, outputs numbered) as the store holds them."""
    query = select(func.count(), func.count(m.Task.map_seq)).where(m.Task.map_id == map_id)
    async with store.session() as s:
        submitted, finished = (await s.execute(query)).one()
    return int(submitted), int(finished)


async def map_outputs(store: Store, map_id: str, after: int, limit: int) -> list[Any]:
    """Finished outputs numbered ``after``, ``after + 1``… in order, up to the first number not yet committed."""
    query = (
        select(*_OUTPUT_COLUMNS)
        .where(m.Task.map_id == map_id, m.Task.map_seq >= after)
        .order_by(m.Task.map_seq)
        .limit(limit)
    )
    async with store.session() as s:
        rows = list((await s.execute(query)).all())
    contiguous = []
    for expected, row in enumerate(rows, start=after):
        if row.map_seq != expected:
            break
        contiguous.append(row)
    return contiguous


async def next_map_seqs(store: Store, map_ids: Iterable[str]) -> dict[str, int]:
    """Per map, the number its next finished output gets (after a change of leader: where the last one stopped)."""
    ids = sorted(set(map_ids))
    if not ids:
        return {}
    query = select(m.Task.map_id, func.max(m.Task.map_seq)).where(m.Task.map_id.in_(ids)).group_by(m.Task.map_id)
    async with store.session() as s:
        found = {map_id: (seq + 1 if seq is not None else 0) for map_id, seq in (await s.execute(query)).all()}
    return {map_id: found.get(map_id, 0) for map_id in ids}


async def cancel_stored_map(store: Store, map_id: str, now: float) -> int:
    """Mark the map cancelled and cancel its inputs no dispatcher holds yet; return how many inputs were open.

    The inputs the leader holds it cancels when it next looks for new work
    (``cancelled_maps``), which this wakes it to do (NOTIFY, PostgreSQL).
    """
    error = {"type": "Cancelled", "message": "cancelled by the caller"}
    held = select(func.count()).where(m.Task.map_id == map_id, m.Task.state.in_(OPEN_STATES))
    async with store.session() as s, s.begin():
        found = await s.get(m.Map, map_id)
        if found is None:
            return 0
        found.cancelled = True
        result = await s.execute(
            update(m.Task)
            .where(m.Task.map_id == map_id, m.Task.owner.is_(None), m.Task.state == "PENDING")
            .values(state="CANCELLED", error=error, finished_at=now)
        )
        open_held = int(await s.scalar(held) or 0)
        if store.is_postgres:
            await s.execute(_NOTIFY, {"channel": NEW_TASKS_CHANNEL, "payload": found.deployment_id})
    return int(result.rowcount or 0) + open_held  # type: ignore[attr-defined]


async def cancelled_maps(store: Store, map_ids: Iterable[str]) -> set[str]:
    """Which of these maps were cancelled (through any gateway)."""
    ids = sorted(set(map_ids))
    if not ids:
        return set()
    async with store.session() as s:
        return set((await s.scalars(select(m.Map.id).where(m.Map.id.in_(ids), m.Map.cancelled))).all())
