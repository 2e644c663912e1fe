"""Schedule ticks as rows: claimed once, across any number of gateways."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import _models as m
from ._store import Store


async def claim_tick(store: Store, workspace_id: str, name: str, tick: float, state: str) -> bool:
    """Record a tick; False when another gateway (or an earlier pass) already has it."""
    try:
        async with store.session() as s, s.begin():
            s.add(m.ScheduleRun(workspace_id=workspace_id, name=name, tick=tick, state=state))
        return True
    except IntegrityError:
        return False


async def set_tick_task(store: Store, workspace_id: str, name: str, tick: float, task_id: str) -> None:
    async with store.session() as s, s.begin():
        row = await s.scalar(
            select(m.ScheduleRun).where(
                m.ScheduleRun.workspace_id == workspace_id, m.ScheduleRun.name == name, m.ScheduleRun.tick == tick
            )
        )
        if row is not None:
            row.task_id = task_id


async def last_tick(store: Store, workspace_id: str, name: str) -> float | None:
    async with store.session() as s:
        value = await s.scalar(
            select(func.max(m.ScheduleRun.tick)).where(
                m.ScheduleRun.workspace_id == workspace_id, m.ScheduleRun.name == name
            )
        )
        return float(value) if value is not None else None


async def schedule_runs(store: Store, workspace_id: str, name: str, limit: int = 20) -> Sequence[m.ScheduleRun]:
    async with store.session() as s:
        rows = await s.scalars(
            select(m.ScheduleRun)
            .where(m.ScheduleRun.workspace_id == workspace_id, m.ScheduleRun.name == name)
            .order_by(m.ScheduleRun.tick.desc())
            .limit(limit)
        )
        return rows.all()
