"""Schema, migrations and queries: the only part that speaks SQL."""

from ._idempotency import RETENTION_SECONDS as IDEMPOTENCY_RETENTION_SECONDS
from ._idempotency import KeyClaim, KeyHolder, prune_keys
from ._ids import hash_secret, new_id
from ._models import AuditEntry, Container, Deployment, Image, Secret, Task, Token, Worker, Workspace, WorkspaceQuota
from ._quotas import all_quotas, delete_quota, get_quota, put_quota
from ._secrets import delete_secret, get_secrets, list_secrets, put_secret
from ._store import ACTIVE_CONTAINER_STATES, Principal, Store, sqlite_url
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
    insert_unowned_keyed,
    list_tasks,
    open_tasks,
)

__all__ = [
    "ACTIVE_CONTAINER_STATES",
    "DONE_TASKS_CHANNEL",
    "IDEMPOTENCY_RETENTION_SECONDS",
    "NEW_TASKS_CHANNEL",
    "OPEN_STATES",
    "TERMINAL_STATES",
    "AuditEntry",
    "Container",
    "Deployment",
    "Image",
    "KeyClaim",
    "KeyHolder",
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
    "insert_unowned_keyed",
    "list_secrets",
    "list_tasks",
    "new_id",
    "open_tasks",
    "prune_keys",
    "put_quota",
    "put_secret",
    "sqlite_url",
]
