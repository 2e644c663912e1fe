"""Schema, migrations and queries: the only part that speaks SQL."""

from ._ids import hash_secret, new_id
from ._models import AuditEntry, Container, Deployment, Image, Secret, Task, Token, Worker, Workspace
from ._secrets import delete_secret, get_secrets, list_secrets, put_secret
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
    "Secret",
    "Store",
    "Task",
    "TaskWriter",
    "Token",
    "Worker",
    "Workspace",
    "delete_secret",
    "finished_map_tasks",
    "get_secrets",
    "get_task",
    "hash_secret",
    "list_secrets",
    "list_tasks",
    "new_id",
    "open_tasks",
    "put_secret",
    "sqlite_url",
]
