"""Schema, migrations and queries: the only part that speaks SQL."""

from ._ids import hash_secret, new_id
from ._models import AuditEntry, Container, Deployment, Image, Token, Worker, Workspace
from ._store import ACTIVE_CONTAINER_STATES, Conflict, NotFound, Principal, Store, sqlite_url

__all__ = [
    "ACTIVE_CONTAINER_STATES",
    "AuditEntry",
    "Conflict",
    "Container",
    "Deployment",
    "Image",
    "NotFound",
    "Principal",
    "Store",
    "Token",
    "Worker",
    "Workspace",
    "hash_secret",
    "new_id",
    "sqlite_url",
]
