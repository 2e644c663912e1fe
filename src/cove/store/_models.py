"""Tables. Changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


def _now() -> float:
    return time.time()


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A worker token speaks for this one worker only (set when it is created for a worker, or at its
    # first registration): orders carry decrypted secrets, so no other worker may read them.
    worker_identity: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Session(Base):
    """A browser's sign-in to the dashboard: a cookie whose hash is stored here, speaking for ``token_id``.

    ``workspace_id`` is the workspace the session acts in: the token's own, or, for an admin token, the one
    the admin switched to. Revoking the token ends its sessions too (the lookup joins the token).
    """

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class App(Base):
    """The deployments deployed together from one file; a deployment's live version belongs to one app.

    An ephemeral app is a script's run (``python script.py``): its client sends
    heartbeats, and the gateway stops the app's deployments when they stop
    coming (or when the script asks, on its way out); ``stopped_at`` says it ended.
    """

    __tablename__ = "apps"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        # The gateway's reaper looks for live ephemeral apps whose heartbeat is old.
        Index("ix_apps_ephemeral_live", "ephemeral", "stopped_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    # Where it was last deployed from (the file, as the deploying client named it): shown in conflicts.
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    ephemeral: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    python: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    built_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CodeObject(Base):
    __tablename__ = "code_objects"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    # The archive itself when it is small and gateways share no folder (PostgreSQL): any gateway can serve it.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)


class CodeOwner(Base):
    """A workspace that uploaded a code archive: only it may deploy that hash.

    The archive itself stays one content-addressed blob however many
    workspaces upload it; this row is each workspace's proof of possession.
    """

    __tablename__ = "code_owners"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    hash: Mapped[str] = mapped_column(ForeignKey("code_objects.hash"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class ImageUser(Base):
    """A workspace that requested an image's build: only it sees the spec and may deploy the image.

    Images are shared by spec hash, but a spec can hold ``env_vars`` its
    workspace would not show to others.
    """

    __tablename__ = "image_users"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("workspace_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    module: Mapped[str] = mapped_column(String(255))
    function: Mapped[str] = mapped_column(String(255))
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    code_hash: Mapped[str] = mapped_column(ForeignKey("code_objects.hash"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="active")
    ephemeral: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The names its app's functions run under where not their own (an ephemeral run's ``f--RUN``), which its
    # containers call them by (``cove._wire.apps``); NULL: every function of the app runs under its own name.
    app_names: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    cpu_millis: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    runtime: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[float] = mapped_column(Float, default=_now)
    last_heartbeat: Mapped[float] = mapped_column(Float, default=_now)
    # The persistent id of the worker's home (``name`` is only what people see), and the token it registered with.
    identity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Container(Base):
    __tablename__ = "containers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    worker_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    ready_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float, default=_now, index=True)
    workspace_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    token_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Event(Base):
    """A control-plane decision and why it was taken: what ``cove events`` and ``GET /api/v1/events`` show.

    ``inputs`` holds the numbers the decision was taken on (what was in flight,
    which worker, the exit code), so a reader can check the reason against them.
    A NULL ``workspace_id`` is an event of the whole cluster (a worker drained,
    the scheduler lease taken): only admins see those. Rows expire after the
    retention the store's ``EventWriter`` is given.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_workspace_id_id", "workspace_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float, default=_now, index=True)
    workspace_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    deployment: Mapped[str | None] = mapped_column(String(63), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Task(Base):
    """One input of a function call, ``.map`` or task queue: a durable row.

    ``args`` and ``result`` are opaque bytes (pickled by the SDK, or JSON from
    an HTTP put); the gateway stores and routes them but never unpickles them.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        # A workspace's tasks newest first, all of them or those in one state (the task list's pages).
        Index("ix_tasks_workspace_state_created", "workspace_id", "state", "created_at"),
        Index("ix_tasks_workspace_created", "workspace_id", "created_at"),
        # One deployment's tasks newest first (the task list filtered by deployment).
        Index("ix_tasks_workspace_name_created", "workspace_id", "name", "created_at"),
        Index("ix_tasks_map", "map_id", "map_index"),
        Index("ix_tasks_map_seq", "map_id", "map_seq"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    map_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    map_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A finished map input's place in the map's order of completion: 0, 1, 2… as the leader finished them,
    # so a map's outputs can be read from the store after a cursor by any gateway.
    map_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    args: Mapped[bytes] = mapped_column(LargeBinary)
    result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    not_before: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The request that made the call (its X-Request-Id and W3C traceparent), for whichever gateway runs it:
    # the handler's log lines carry the id and its span joins the trace.
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The gateway whose dispatcher holds the task in memory; NULL until the leader claims it
    # (a task accepted by a gateway that does not run the scheduler).
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class TrafficSplit(Base):
    """How a deployment's calls are shared between versions, when not all go to the newest (a canary).

    ``weights`` maps a version number (as a string: JSON keys are strings) to
    its percentage; the percentages add up to 100. A new version deployed
    under the name removes the row, so the newest version takes every call again.
    """

    __tablename__ = "traffic_splits"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float, default=_now)


class Map(Base):
    """One ``.map``: its inputs are task rows with its id, so any gateway can take inputs and read outputs."""

    __tablename__ = "maps"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"))
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class IdempotencyKey(Base):
    """A caller's ``Idempotency-Key`` for one put or spawn, and the task it made.

    The primary key is what keeps a repeated key to one task, even when two
    gateways accept it at once; ``request_hash`` tells a replay of the same
    request from a key reused for another one.
    """

    __tablename__ = "idempotency_keys"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(40))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=_now, index=True)


class Secret(Base):
    """A named set of environment variables; ``ciphertext`` is the encrypted JSON of the values.

    Only key names are kept in clear, so listings can say what a secret holds
    without ever decrypting it.
    """

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    updated_at: Mapped[float] = mapped_column(Float, default=_now)


class ScheduleRun(Base):
    """One tick of a schedule: run (with its task) or missed while no gateway was up.

    The unique key makes "one run per tick" hold with several gateways: the
    first to insert a tick runs it, the others see the conflict and skip.
    """

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("workspace_id", "name", "tick"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(63))
    tick: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class WorkspaceQuota(Base):
    """Limits on what one workspace's containers may hold at once; NULL means no limit."""

    __tablename__ = "workspace_quotas"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    max_containers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_cpu_millis: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_volume_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_code_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_blob_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=_now)


class GatewayRow(Base):
    """A live gateway and the URL other gateways fetch content-addressed files from; ``seen_at`` is renewed."""

    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[float] = mapped_column(Float)


class ClusterValue(Base):
    """A value every gateway of the cluster must agree on, written once by the first (the secret key's check)."""

    __tablename__ = "cluster_values"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ClusterLease(Base):
    """A named lease several gateways compete for; its holder runs that job until ``expires_at``.

    The ``scheduler`` lease decides which gateway runs the scheduler, autoscaler,
    task dispatch and schedules. ``url`` is where its holder takes forwarded
    requests; ``epoch`` grows by one each time the lease changes hands.
    """

    __tablename__ = "cluster_leases"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(40), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
