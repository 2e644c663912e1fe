"""What the scheduler tells the event log, one method per kind of decision.

"Why is it waiting?" is answered from these rows (``cove events``), so each
names its reason in words and keeps the numbers it was taken on. Recording
never waits: the store's ``EventWriter`` queues and writes in batches.
"""

from __future__ import annotations

from typing import Any

from ..store import Deployment, EventWriter

# Every kind the scheduler records (what ``cove events`` filters and the docs list).
EVENT_KINDS = ("scale", "placed", "backlog", "started", "ready", "exited", "retry", "drain", "worker", "lease")

OOM_PREFIX = "OOMKilled"
START_TIMEOUT_REASON = "worker did not start the container in time"


class EventLog:
    """The scheduler's side of the event log: deployment events in their workspace, cluster events in none."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    def of(self, deployment: Deployment, kind: str, reason: str, **inputs: Any) -> None:
        """An event of one deployment version, seen by its workspace."""
        self.writer.record(deployment.workspace_id, kind, reason, deployment.name, version=deployment.version, **inputs)

    def cluster(self, kind: str, reason: str, **inputs: Any) -> None:
        """An event of the whole cluster (workers, the lease): seen by admins only."""
        self.writer.record(None, kind, reason, None, **inputs)

    def exited(
        self, deployment: Deployment, container_id: str, reason: str, *, failed: bool, exit_code: int | None
    ) -> None:
        """A container ended: with its exit code, and whether memory (OOM) or the start timeout ended it."""
        self.of(
            deployment,
            "exited",
            reason,
            container=container_id,
            exit_code=exit_code,
            failed=failed,
            oom=reason.startswith(OOM_PREFIX),
            timeout=reason == START_TIMEOUT_REASON,
        )
