"""What changed in a workspace, in a few numbers per kind: the marks an open dashboard page is pushed on.

Each mark is a handful of aggregates that move whenever a row of its kind is
added or changes state (a deploy or stop, a container placed, ready or gone,
an event, a task accepted or finished). They are read from the store, so
they are the same on every gateway of a cluster, and each is answered from an
index (or the workspace's own rows): cheap enough to read every second for
each open page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from . import _models as m
from ._store import Store
from ._tasks import OPEN_STATES

Marks = dict[str, tuple[Any, ...]]


async def change_marks(store: Store, workspace_id: str, *, cluster: bool = False) -> Marks:
    """The marks of ``workspace_id`` (``cluster``: an admin's, whose events include the cluster's own)."""
    deployments = select(func.count(), func.max(m.Deployment.created_at), func.max(m.Deployment.stopped_at)).where(
        m.Deployment.workspace_id == workspace_id
    )
    containers = select(
        func.count(), func.max(m.Container.created_at), func.max(m.Container.ready_at), func.max(m.Container.stopped_at)
    ).where(m.Container.workspace_id == workspace_id)
    mine = m.Event.workspace_id == workspace_id
    events = select(func.max(m.Event.id)).where(or_(mine, m.Event.workspace_id.is_(None)) if cluster else mine)
    newest_task = select(func.max(m.Task.created_at)).where(m.Task.workspace_id == workspace_id)
    open_tasks = select(func.count()).where(m.Task.workspace_id == workspace_id, m.Task.state.in_(OPEN_STATES))
    async with store.session() as s:
        return {
            "deployments": tuple((await s.execute(deployments)).one()),
            "containers": tuple((await s.execute(containers)).one()),
            "events": ((await s.execute(events)).scalar(),),
            "tasks": ((await s.execute(newest_task)).scalar(), (await s.execute(open_tasks)).scalar()),
        }
