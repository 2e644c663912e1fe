"""Schema, migrations and queries: the only part that speaks SQL."""

from ._ids import hash_secret, new_id
from ._models import AuditEntry, Container, Deployment, Image, Task, Token, Worker, Workspace
from ._store import ACTIVE_CONTAINER_STATES, Conflict, NotFound, Principal, Store, sqlite_url
from ._tasks import OPEN_STATES, TERMINAL_STATES, TaskWriter, finished_map_tasks, get_task, list_tasks, open_tasks

__all__ = [
    "ACTIVE_CONTAINER_STATES",
    "OPEN_STATES",
    "TERMINAL_STATES",
    "AuditEntry",
    "Conflict",
    "Container",
    "Deployment",
    "Image",
    "NotFound",
    "Principal",
    "Store",
    "Task",
    "TaskWriter",
    "Token",
    "Worker",
    "Workspace",
    "finished_map_tasks",
    "get_task",
    "hash_secret",
    "list_tasks",
    "new_id",
    "open_tasks",
    "sqlite_url",
]
