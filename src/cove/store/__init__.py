"""Schema, migrations and queries: the only part that speaks SQL."""

from ._ids import hash_secret, new_id
from ._models import AuditEntry, Container, Deployment, Image, Secret, Task, Token, Worker, Workspace, WorkspaceQuota
from ._quotas import all_quotas, delete_quota, get_quota, put_quota
from ._secrets import delete_secret, get_secrets, list_secrets, put_secret
from ._store import ACTIVE_CONTAINER_STATES, Conflict, NotFound, Principal, Store, sqlite_url
from ._tasks import (
    DONE_TASKS_CHANNEL,
    NEW_TASKS_CHANNEL,
    OPEN_STATES,
    TERMINAL_STATES,
    TaskWriter,
    claim_tasks,
    count_pending,
    finished_map_tasks,
    get_task,
    insert_unowned,
    list_tasks,
    open_tasks,
)

__all__ = [
    "ACTIVE_CONTAINER_STATES",
    "DONE_TASKS_CHANNEL",
    "NEW_TASKS_CHANNEL",
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
    "WorkspaceQuota",
    "all_quotas",
    "claim_tasks",
    "count_pending",
    "delete_quota",
    "delete_secret",
    "finished_map_tasks",
    "get_quota",
    "get_secrets",
    "get_task",
    "hash_secret",
    "insert_unowned",
    "list_secrets",
    "list_tasks",
    "new_id",
    "open_tasks",
    "put_quota",
    "put_secret",
    "sqlite_url",
]
