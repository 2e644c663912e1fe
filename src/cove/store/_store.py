"""The store: every query Cove makes, behind one class.

Other parts call methods and receive detached rows; no SQL leaves this
package. SQLite (aiosqlite) by default, PostgreSQL (asyncpg) when
``COVE_DATABASE_URL`` says so; the schema comes from Alembic migrations.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ..exceptions import Conflict, NotFound
from . import _models as m
from ._ids import hash_secret, new_id, new_token_secret

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x636F7665  # "cove": the advisory lock key that serialises migrations
ACTIVE_CONTAINER_STATES = ("pending", "starting", "listening", "ready", "stopping")


class NotAllowed(PermissionError):
    """The token may not do this, whatever it asks (e.g. a worker token bound to another worker)."""


class AppConflict(Conflict):
    """A deployment name whose live version belongs to another app: deploying it there would take it over."""


def _check_owner(name: str, app: m.App | None, owner: m.App | None, replace: bool) -> None:
    """Refuse to give ``name`` to ``app`` while its live version belongs to ``owner``, unless ``replace``."""
    if owner is None or replace or (app is not None and owner.id == app.id):
        return
    where = f" (from {owner.source})" if owner.source else ""
    what = "a script's run" if owner.ephemeral else "app"
    raise AppConflict(
        f"deployment {name!r} belongs to {what} {owner.name!r}{where}; "
        "rename it with name=..., or move it with --replace"
    )


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a token speaks for."""

    token_id: str
    workspace_id: str
    workspace_name: str
    role: str


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """Async access to Cove's state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def migrate(self) -> None:
        """Bring the schema to the newest migration."""

        def upgrade(connection: Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

        if not self.is_postgres:
            await self._migrate_sqlite(upgrade)
            return
        async with self.engine.begin() as conn:
            # Gateways starting together on one database migrate one at a time (released at commit).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(upgrade)

    async def _migrate_sqlite(self, upgrade: Any) -> None:
        """Every pending migration in one SQLite transaction: all of them land, or none.

        Python's sqlite3 runs DDL outside any transaction unless one was begun
        explicitly, so a migration failing half-way used to leave a database no
        revision describes (a table rebuilt, its copy gone). ``BEGIN IMMEDIATE``
        makes the whole upgrade one transaction that also keeps other processes
        from writing meanwhile. Foreign keys are off while tables are rebuilt
        (SQLite's documented way to alter a referenced table; the pragma cannot
        change inside a transaction) and checked in full before the commit.
        """
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()  # ends SQLAlchemy's autobegun block; the pragma ran outside any transaction
            try:
                async with conn.begin():
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                    await conn.run_sync(upgrade)
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).first()
                    if broken is not None:
                        raise RuntimeError(f"the migrated database breaks a foreign key: {tuple(broken)}")
            finally:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()

    async def close(self) -> None:
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        return self._session()

    # -- audit -----------------------------------------------------------------

    @staticmethod
    def _audit(
        session: AsyncSession,
        who: Principal | None,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        workspace_id: str | None = None,
    ) -> None:
        """Record a control-plane change, in the workspace it changed (default: the actor's)."""
        session.add(
            m.AuditEntry(
                workspace_id=workspace_id or (who.workspace_id if who else None),
                token_id=who.token_id if who else None,
                action=action,
                target=target,
                details=details or {},
            )
        )

    async def audit_log(self, workspace_id: str, limit: int = 100) -> Sequence[m.AuditEntry]:
        async with self.session() as s:
            rows = await s.scalars(
                select(m.AuditEntry)
                .where(m.AuditEntry.workspace_id == workspace_id)
                .order_by(m.AuditEntry.id.desc())
                .limit(limit)
            )
            return rows.all()

    # -- workspaces and tokens -------------------------------------------------

    async def get_workspace(self, name: str) -> m.Workspace:
        async with self.session() as s:
            row = await s.scalar(select(m.Workspace).where(m.Workspace.name == name))
            if row is None:
                raise NotFound(f"workspace {name!r} does not exist")
            return row

    async def ensure_workspace(self, name: str, who: Principal | None = None) -> m.Workspace:
        try:
            return await self.get_workspace(name)
        except NotFound:
            pass
        async with self.session() as s, s.begin():
            row = m.Workspace(id=new_id("ws"), name=name)
            s.add(row)
            self._audit(s, who, "workspace.create", name, workspace_id=row.id)
        return row

    async def bootstrap(self, workspace: str = "default", admin_secret: str | None = None) -> str | None:
        """Create the default workspace and an admin token on first start.

        ``admin_secret`` is the operator's own (``COVE_ADMIN_TOKEN``, from a Kubernetes Secret), else one is made.
        Returns the admin secret when one was made now, else None.
        """
        async with self.session() as s:
            existing = await s.scalar(select(func.count()).select_from(m.Token).where(m.Token.role == "admin"))
        if existing:
            return None
        ws = await self.ensure_workspace(workspace)
        _, secret = await self.create_token(ws.name, "admin", role="admin", secret=admin_secret)
        return secret

    async def create_token(
        self,
        workspace: str,
        name: str,
        role: str = "user",
        who: Principal | None = None,
        worker_identity: str | None = None,
        secret: str | None = None,
    ) -> tuple[m.Token, str]:
        """A new token; ``worker_identity`` binds a worker token to that worker from the start.

        ``secret`` is only for the bootstrap admin token an operator supplies; every other token is random.
        """
        if role not in ("admin", "user", "worker", "metrics"):
            raise Conflict(f"role must be 'admin', 'user', 'worker' or 'metrics', not {role!r}")
        if worker_identity is not None and role != "worker":
            raise Conflict("only a worker token can be bound to a worker")
        ws = await self.get_workspace(workspace)
        secret = secret or new_token_secret()
        async with self.session() as s, s.begin():
            row = m.Token(
                id=new_id("tok"),
                workspace_id=ws.id,
                name=name,
                secret_hash=hash_secret(secret),
                role=role,
                worker_identity=worker_identity,
            )
            s.add(row)
            self._audit(s, who, "token.create", row.id, {"workspace": workspace, "name": name, "role": role}, ws.id)
        return row, secret

    async def authenticate(self, secret: str) -> Principal | None:
        async with self.session() as s:
            row = await s.execute(
                select(m.Token, m.Workspace)
                .join(m.Workspace, m.Workspace.id == m.Token.workspace_id)
                .where(m.Token.secret_hash == hash_secret(secret), m.Token.revoked_at.is_(None))
            )
            found = row.first()
        if found is None:
            return None
        token, ws = found
        return Principal(token_id=token.id, workspace_id=ws.id, workspace_name=ws.name, role=token.role)

    async def list_tokens(self, workspace_id: str) -> Sequence[m.Token]:
        async with self.session() as s:
            rows = await s.scalars(
                select(m.Token).where(m.Token.workspace_id == workspace_id).order_by(m.Token.created_at)
            )
            return rows.all()

    async def revoke_token(self, who: Principal, token_id: str) -> None:
        """Users revoke user tokens of their own workspace; the admin revokes any.

        A user cannot revoke an admin or worker token, even in its own workspace:
        that would let any member lock the operator (or the workers) out.
        """
        query = update(m.Token).where(m.Token.id == token_id, m.Token.revoked_at.is_(None))
        if who.role != "admin":
            query = query.where(m.Token.workspace_id == who.workspace_id, m.Token.role == "user")
        async with self.session() as s, s.begin():
            result = await s.execute(query.values(revoked_at=time.time()))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"token {token_id!r} does not exist or is already revoked")
            self._audit(s, who, "token.revoke", token_id)

    async def revoke_token_by_id(self, token_id: str) -> None:
        """Revoke without a principal: the server replacing its own local-worker token."""
        async with self.session() as s, s.begin():
            await s.execute(update(m.Token).where(m.Token.id == token_id).values(revoked_at=time.time()))

    async def bind_worker_token(self, who: Principal, identity: str) -> None:
        """Let ``who`` register the worker ``identity``, binding a worker token to it at its first registration.

        Orders carry decrypted secrets, so a worker token speaks for one worker
        only: any other identity is refused. No token may register an identity
        that another live worker token holds (that would take the worker over).
        Admin tokens are never bound: an operator may run several workers with one.
        """
        async with self.session() as s, s.begin():
            holder = await s.scalar(
                select(m.Token.id).where(
                    m.Token.worker_identity == identity, m.Token.role == "worker", m.Token.revoked_at.is_(None)
                )
            )
            if holder is not None and holder != who.token_id:
                raise NotAllowed(
                    f"worker {identity} belongs to another worker token; register it with that token, "
                    "or revoke that token first"
                )
            if who.role != "worker":
                return
            await s.execute(
                update(m.Token)
                .where(m.Token.id == who.token_id, m.Token.worker_identity.is_(None))
                .values(worker_identity=identity)
            )
            bound = await s.scalar(select(m.Token.worker_identity).where(m.Token.id == who.token_id))
            if bound != identity:
                raise NotAllowed(
                    f"this worker token belongs to worker {bound}, not {identity}: "
                    "each worker needs a token of its own (cove token create --role worker)"
                )

    # -- images and code ---------------------------------------------------------

    async def get_image(self, image_id: str) -> m.Image | None:
        async with self.session() as s:
            return await s.get(m.Image, image_id)

    async def put_image(self, image_id: str, spec: dict[str, Any], **fields: Any) -> None:
        async with self.session() as s, s.begin():
            row = await s.get(m.Image, image_id)
            if row is None:
                s.add(m.Image(id=image_id, spec=spec, **fields))
            else:
                for key, value in fields.items():
                    setattr(row, key, value)

    async def add_image_user(self, image_id: str, workspace_id: str) -> None:
        """Record that ``workspace_id`` asked for this image; from then on it may see and deploy it."""
        async with self.session() as s, s.begin():
            if await s.get(m.ImageUser, (workspace_id, image_id)) is None:
                s.add(m.ImageUser(workspace_id=workspace_id, image_id=image_id))

    async def image_used_by(self, image_id: str, workspace_id: str) -> bool:
        async with self.session() as s:
            return await s.get(m.ImageUser, (workspace_id, image_id)) is not None

    async def image_ids_used_by(self, workspace_id: str) -> set[str]:
        async with self.session() as s:
            rows = await s.scalars(select(m.ImageUser.image_id).where(m.ImageUser.workspace_id == workspace_id))
            return set(rows.all())

    async def has_code(self, workspace_id: str, code_hash: str) -> bool:
        """Whether this workspace uploaded the archive: another workspace's upload does not count.

        A workspace that only knows a hash must upload the archive itself,
        which proves it holds the code (the blob is still stored once).
        """
        async with self.session() as s:
            return await s.get(m.CodeOwner, (workspace_id, code_hash)) is not None

    async def code_blob_stored(self, code_hash: str) -> bool:
        """Whether any workspace uploaded the archive (what workers may fetch)."""
        async with self.session() as s:
            return await s.get(m.CodeObject, code_hash) is not None

    async def add_code(self, code_hash: str, size: int, who: Principal, data: bytes | None = None) -> None:
        """Store the archive's row once and make the uploading workspace one of its owners.

        ``data``, when given, is kept in the row: any gateway can then serve the archive without a shared folder.
        """
        async with self.session() as s, s.begin():
            if await s.get(m.CodeObject, code_hash) is None:
                s.add(m.CodeObject(hash=code_hash, size=size, data=data))
                await s.flush()
            if await s.get(m.CodeOwner, (who.workspace_id, code_hash)) is None:
                s.add(m.CodeOwner(workspace_id=who.workspace_id, hash=code_hash))
                self._audit(s, who, "code.upload", code_hash, {"size": size})

    # -- deployments ---------------------------------------------------------------

    async def create_deployment(
        self,
        who: Principal,
        *,
        name: str,
        app: str,
        kind: str,
        module: str,
        function: str,
        image_id: str,
        code_hash: str,
        config: dict[str, Any],
        ephemeral: bool = False,
        rollback_of: int | None = None,
        replace: bool = False,
        source: str | None = None,
        app_names: dict[str, str] | None = None,
        scaled: dict[str, Any] | None = None,
    ) -> tuple[m.Deployment, bool]:
        """Register a new version, or return the current one when nothing changed.

        Returns the deployment and whether a new version was created.
        ``rollback_of`` is the earlier version whose content this repeats (the
        audit log says so); ``scaled`` the autoscaler settings a new version
        changes and nothing else (audited as ``deployment.scale``). A name
        whose live version belongs to another app is refused (``AppConflict``)
        unless ``replace`` moves it to ``app``; ``source`` records where
        ``app`` was deployed from; ``app_names`` are the names the app's
        functions run under where not their own (``cove._wire.apps``).
        """
        for _ in range(5):
            async with self.session() as s:
                named = select(m.Deployment).where(
                    m.Deployment.workspace_id == who.workspace_id, m.Deployment.name == name
                )
                latest = await s.scalar(named.order_by(m.Deployment.version.desc()).limit(1))
                live = await s.scalar(
                    named.where(m.Deployment.state == "active").order_by(m.Deployment.version.desc()).limit(1)
                )
                app_row = await s.scalar(select(m.App).where(m.App.workspace_id == who.workspace_id, m.App.name == app))
                owner = None if live is None else await s.get(m.App, live.app_id)
            _check_owner(name, app_row, owner, replace)
            same = (
                latest is not None
                and latest.state == "active"
                and app_row is not None
                and latest.app_id == app_row.id
                and (latest.app_names or {}) == (app_names or {})
                and (
                    (latest.kind, latest.module, latest.function, latest.image_id, latest.code_hash, latest.config)
                    == (kind, module, function, image_id, code_hash, config)
                )
            )
            if latest is not None and same:
                if source and app_row is not None and app_row.source != source:
                    await self._set_app_source(app_row.id, source)
                return latest, False
            try:
                async with self.session() as s, s.begin():
                    app_row = await self._app_for_deploy(s, who, app, source)
                    row = m.Deployment(
                        id=new_id("dep"),
                        workspace_id=who.workspace_id,
                        app_id=app_row.id,
                        name=name,
                        version=(latest.version + 1) if latest else 1,
                        kind=kind,
                        module=module,
                        function=function,
                        image_id=image_id,
                        code_hash=code_hash,
                        config=config,
                        ephemeral=ephemeral or app_row.ephemeral,
                        app_names=app_names or None,
                    )
                    s.add(row)
                    # The new version takes every call: a split chosen among the older ones ends here.
                    await s.execute(
                        delete(m.TrafficSplit).where(
                            m.TrafficSplit.workspace_id == who.workspace_id, m.TrafficSplit.name == name
                        )
                    )
                    details: dict[str, Any] = {"image_id": image_id, "code_hash": code_hash, "app": app}
                    if owner is not None and owner.name != app:
                        details["moved_from_app"] = owner.name
                    if rollback_of is not None:
                        details["source_version"] = rollback_of
                    action = "deployment.create" if rollback_of is None else "deployment.rollback"
                    if scaled is not None:
                        details, action = (
                            {"source_version": latest.version if latest else None, **scaled},
                            "deployment.scale",
                        )
                    self._audit(s, who, action, f"{name}/v{row.version}", details)
                return row, True
            except IntegrityError:
                continue  # another deploy took this version number (or made the app); read again
        raise Conflict(f"deployment {name!r} is being changed concurrently; try again")

    async def _app_for_deploy(self, s: AsyncSession, who: Principal, app: str, source: str | None) -> m.App:
        """The app a new version goes into, made on its first deploy; an ephemeral app that ended takes none."""
        app_row = await s.scalar(select(m.App).where(m.App.workspace_id == who.workspace_id, m.App.name == app))
        if app_row is None:
            app_row = m.App(id=new_id("app"), workspace_id=who.workspace_id, name=app, source=source)
            s.add(app_row)
            await s.flush()
        elif app_row.stopped_at is not None and app_row.ephemeral:
            raise Conflict(f"app {app!r} has ended: its script's run is over")
        elif source and app_row.source != source:
            app_row.source = source
        return app_row

    async def _set_app_source(self, app_id: str, source: str) -> None:
        async with self.session() as s, s.begin():
            await s.execute(update(m.App).where(m.App.id == app_id).values(source=source))

    async def get_deployment(self, workspace_id: str, name: str, version: int | None = None) -> m.Deployment:
        """The given version, or the newest active one."""
        query = select(m.Deployment).where(m.Deployment.workspace_id == workspace_id, m.Deployment.name == name)
        if version is None:
            query = query.where(m.Deployment.state == "active").order_by(m.Deployment.version.desc()).limit(1)
        else:
            query = query.where(m.Deployment.version == version)
        async with self.session() as s:
            row = await s.scalar(query)
        if row is None or (version is not None and row.state == "deleted"):
            label = name if version is None else f"{name}/v{version}"
            raise NotFound(f"deployment {label!r} does not exist")
        return row

    async def get_deployment_by_id(self, deployment_id: str) -> m.Deployment | None:
        async with self.session() as s:
            return await s.get(m.Deployment, deployment_id)

    async def list_deployments(self, workspace_id: str, include_stopped: bool = False) -> Sequence[m.Deployment]:
        query = select(m.Deployment).where(m.Deployment.workspace_id == workspace_id)
        if not include_stopped:
            query = query.where(m.Deployment.state == "active")
        async with self.session() as s:
            rows = await s.scalars(query.order_by(m.Deployment.name, m.Deployment.version))
            return rows.all()

    async def active_schedules(self) -> list[m.Deployment]:
        """The newest active version of every ``@schedule`` deployment, in all workspaces."""
        return await self.newest_active("schedule")

    async def newest_active(self, kind: str | None = None) -> list[m.Deployment]:
        """The newest active version of every deployment (of ``kind`` when given), in all workspaces."""
        query = select(m.Deployment).where(m.Deployment.state == "active")
        if kind is not None:
            query = query.where(m.Deployment.kind == kind)
        async with self.session() as s:
            rows = (await s.scalars(query.order_by(m.Deployment.version))).all()
        newest: dict[tuple[str, str], m.Deployment] = {}
        for row in rows:
            newest[(row.workspace_id, row.name)] = row
        return list(newest.values())

    async def rollback_source(self, who: Principal, name: str, to: int | None = None) -> tuple[m.Deployment, str]:
        """The version a rollback makes live again, with its app's name.

        ``to`` names the version; left out, the newest one before the live
        (newest active) version. A rollback itself is a new version with this
        one's code, image and config (:meth:`create_deployment`), so the
        history keeps what happened and a later rollback can undo it.
        """
        live = await self.get_deployment(who.workspace_id, name)
        async with self.session() as s:
            if to is not None:
                source = await self.get_deployment(who.workspace_id, name, to)
            else:
                earlier = await s.scalar(
                    select(m.Deployment)
                    .where(
                        m.Deployment.workspace_id == who.workspace_id,
                        m.Deployment.name == name,
                        m.Deployment.version < live.version,
                        m.Deployment.state != "deleted",
                    )
                    .order_by(m.Deployment.version.desc())
                    .limit(1)
                )
                if earlier is None:
                    raise Conflict(f"deployment {name!r} has no version before v{live.version} to roll back to")
                source = earlier
            app = await s.get(m.App, source.app_id)
        return source, app.name if app is not None else name

    async def stop_deployment(self, who: Principal, name: str, *, delete: bool = False) -> list[m.Deployment]:
        """Stop every version of a deployment; returns the versions stopped."""
        async with self.session() as s, s.begin():
            rows = (
                await s.scalars(
                    select(m.Deployment).where(
                        m.Deployment.workspace_id == who.workspace_id,
                        m.Deployment.name == name,
                        m.Deployment.state != "deleted",
                    )
                )
            ).all()
            if not rows:
                raise NotFound(f"deployment {name!r} does not exist")
            for row in rows:
                row.state = "deleted" if delete else "stopped"
                row.stopped_at = time.time()
            self._audit(s, who, "deployment.delete" if delete else "deployment.stop", name)
        return list(rows)

    # -- workers ---------------------------------------------------------------------

    async def register_worker(
        self,
        *,
        name: str,
        cpu_millis: int,
        memory_mib: int,
        labels: dict[str, Any],
        runtime: str,
        who: Principal,
        identity: str | None = None,
    ) -> m.Worker:
        """One life of a worker: a new row per registration, with the identity and token it registered with."""
        async with self.session() as s, s.begin():
            row = m.Worker(
                id=new_id("wrk"),
                name=name,
                state="ready",
                cpu_millis=cpu_millis,
                memory_mib=memory_mib,
                labels=labels,
                runtime=runtime,
                identity=identity,
                token_id=who.token_id,
            )
            s.add(row)
            self._audit(s, who, "worker.register", row.id, {"name": name, "runtime": runtime, "identity": identity})
        return row

    async def worker_token_id(self, worker_id: str) -> str | None:
        """The token a worker registered with (None for an unknown worker)."""
        async with self.session() as s:
            return await s.scalar(select(m.Worker.token_id).where(m.Worker.id == worker_id))

    async def set_worker_state(self, worker_id: str, state: str, heartbeat: bool = False) -> None:
        values: dict[str, Any] = {"state": state}
        if heartbeat:
            values["last_heartbeat"] = time.time()
        async with self.session() as s, s.begin():
            await s.execute(update(m.Worker).where(m.Worker.id == worker_id).values(**values))

    async def list_workers(self) -> Sequence[m.Worker]:
        async with self.session() as s:
            return (await s.scalars(select(m.Worker).where(m.Worker.state != "gone"))).all()

    # -- containers ---------------------------------------------------------------------

    async def add_container(self, row: m.Container) -> None:
        async with self.session() as s, s.begin():
            s.add(row)

    async def update_container(self, container_id: str, **fields: Any) -> None:
        async with self.session() as s, s.begin():
            await s.execute(update(m.Container).where(m.Container.id == container_id).values(**fields))

    async def get_container(self, container_id: str) -> m.Container | None:
        async with self.session() as s:
            return await s.get(m.Container, container_id)

    async def list_containers(
        self, workspace_id: str | None = None, *, active_only: bool = True, deployment_ids: Sequence[str] = ()
    ) -> Sequence[m.Container]:
        query = select(m.Container)
        if workspace_id is not None:
            query = query.where(m.Container.workspace_id == workspace_id)
        if active_only:
            query = query.where(m.Container.state.in_(ACTIVE_CONTAINER_STATES))
        if deployment_ids:
            query = query.where(m.Container.deployment_id.in_(deployment_ids))
        async with self.session() as s:
            return (await s.scalars(query.order_by(m.Container.created_at))).all()

    async def fail_orphaned_containers(self, reason: str) -> int:
        """On start-up, containers the previous server ran are gone with it."""
        async with self.session() as s, s.begin():
            result = await s.execute(
                update(m.Container)
                .where(m.Container.state.in_(ACTIVE_CONTAINER_STATES))
                .values(state="exited", reason=reason, stopped_at=time.time())
            )
            await s.execute(update(m.Worker).where(m.Worker.state != "gone").values(state="gone"))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
