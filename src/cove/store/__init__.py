"""Schema, migrations and queries: the only part that speaks SQL."""

from ._container_tokens import create_container_token, is_container_token, revoke_container_tokens, token_container
from ._idempotency import MAX_KEY_LENGTH, KeyClaim, KeyHolder, prune_keys
from ._idempotency import RETENTION_SECONDS as IDEMPOTENCY_RETENTION_SECONDS
from ._ids import hash_secret, new_id
from ._leases import read_lease, release_lease, take_lease
from ._models import AuditEntry, Container, Deployment, Image, Secret, Task, Token, Worker, Workspace, WorkspaceQuota
from ._notify import Listener, TaskWatch
from ._quotas import all_quotas, code_bytes, delete_quota, get_quota, put_quota, quota_limits
from ._schedules import claim_tick, last_tick, schedule_runs, set_tick_task
from ._secrets import delete_secret, get_secrets, list_secrets, put_secret
from ._store import ACTIVE_CONTAINER_STATES, NotAllowed, Principal, Store, sqlite_url
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
from ._traffic import clear_split, get_split, put_split, share_of, splits_of

__all__ = [
    "ACTIVE_CONTAINER_STATES",
    "DONE_TASKS_CHANNEL",
    "IDEMPOTENCY_RETENTION_SECONDS",
    "MAX_KEY_LENGTH",
    "NEW_TASKS_CHANNEL",
    "OPEN_STATES",
    "TERMINAL_STATES",
    "AuditEntry",
    "Container",
    "Deployment",
    "Image",
    "KeyClaim",
    "KeyHolder",
    "Listener",
    "NotAllowed",
    "Principal",
    "Secret",
    "Store",
    "Task",
    "TaskWatch",
    "TaskWriter",
    "Token",
    "Worker",
    "Workspace",
    "WorkspaceQuota",
    "all_quotas",
    "claim_tasks",
    "claim_tick",
    "clear_split",
    "code_bytes",
    "count_pending",
    "create_container_token",
    "delete_quota",
    "delete_secret",
    "finished_map_tasks",
    "get_quota",
    "get_secrets",
    "get_split",
    "get_task",
    "hash_secret",
    "insert_unowned",
    "insert_unowned_keyed",
    "is_container_token",
    "last_tick",
    "list_secrets",
    "list_tasks",
    "new_id",
    "open_tasks",
    "prune_keys",
    "put_quota",
    "put_secret",
    "put_split",
    "quota_limits",
    "read_lease",
    "release_lease",
    "revoke_container_tokens",
    "schedule_runs",
    "set_tick_task",
    "share_of",
    "splits_of",
    "sqlite_url",
    "take_lease",
    "token_container",
]
