"""Upgrading a store that holds data: every migration from each earlier revision, on SQLite.

A fresh database passes through every migration with empty tables, where a
migration that rebuilds a table (SQLite's way to alter one) cannot trip over
the rows that reference it. Users upgrade databases with rows, so this fills
every table at each revision and upgrades from there to the newest. Downgrades
are checked on SQLite and PostgreSQL: down to the base and up again must give
the schema the models declare.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from cove.store import Store
from cove.store._store import MIGRATIONS, _sqlite_pragmas


def _config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


REVISIONS = [script.revision for script in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))]


def _value(column: sa.Column[Any], row: int) -> Any:
    """A value of the column's type, distinct per row where the column is a key."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return row
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1.0 + row
    if isinstance(kind, sa.JSON):
        return "{}"
    if isinstance(kind, sa.LargeBinary):
        return b"x"
    return f"v{row}"


def _fill(connection: sa.Connection) -> None:
    """One row in every table, with each foreign key pointing at a row that exists."""
    metadata = sa.MetaData()
    metadata.reflect(connection)
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        row: dict[str, Any] = {}
        for column in table.columns:
            if column.foreign_keys:
                (key,) = column.foreign_keys
                row[column.name] = connection.execute(sa.select(key.column).limit(1)).scalar()
            elif not column.nullable or column.primary_key:
                row[column.name] = _value(column, 1)
        connection.execute(table.insert().values(**row))


async def _upgrade_with_rows(url: str, start: str) -> str:
    engine = create_async_engine(url)
    sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)  # foreign keys on, as the gateway runs
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), start))
            await conn.run_sync(_fill)
    finally:
        await engine.dispose()
    store = Store(url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            return str((await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar())
    finally:
        await store.engine.dispose()


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_a_store_with_rows_upgrades_to_the_newest(start: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}"
    assert asyncio.run(_upgrade_with_rows(url, start)) == REVISIONS[-1]


_FAILING_MIGRATION = '''
"""A migration that rebuilds a referenced table, adds one, then fails."""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_written", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("workspaces", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("doomed", sa.Text(), nullable=True))
    raise RuntimeError("this migration fails half-way")


def downgrade() -> None:
    pass
'''


def test_a_migration_failing_half_way_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite runs DDL outside transactions unless told; the store makes the whole upgrade one transaction."""
    import shutil

    from cove.store import _store

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_fails.py").write_text(_FAILING_MIGRATION.replace("{head}", REVISIONS[-1]))
    monkeypatch.setattr(_store, "MIGRATIONS", migrations)
    url = f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}"
    # The first migrate applies every real migration; the second fails in 9999.
    (migrations / "versions" / "9999_fails.py").rename(tmp_path / "9999_fails.py")

    async def scenario() -> tuple[str, list[str], int, int]:
        store = Store(url)
        try:
            await store.migrate()
            async with store.engine.begin() as conn:
                await conn.run_sync(_fill)
        finally:
            await store.engine.dispose()
        (tmp_path / "9999_fails.py").rename(migrations / "versions" / "9999_fails.py")
        return await _fail_half_way(url)

    version, tables, workspaces, foreign_keys = asyncio.run(scenario())
    assert version == REVISIONS[-1]
    assert "half_written" not in tables
    assert not any(name.startswith("_alembic_tmp") for name in tables), tables
    assert workspaces >= 1  # the rebuilt table's rows are all still there
    assert foreign_keys == 1  # the pooled connection got its foreign keys back


async def _fail_half_way(url: str) -> tuple[str, list[str], int, int]:
    store = Store(url)
    try:
        with pytest.raises(RuntimeError, match="fails half-way"):
            await store.migrate()
        async with store.engine.connect() as conn:
            version = str((await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar())
            rows = await conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))
            tables = [str(name) for (name,) in rows]
            workspaces = int((await conn.execute(sa.text("SELECT count(*) FROM workspaces"))).scalar() or 0)
            foreign_keys = int((await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar() or 0)
        return version, tables, workspaces, foreign_keys
    finally:
        await store.engine.dispose()


def _differences(connection: sa.Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cove.store._models import Base

    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def _migrated_differences(url: str) -> list[Any]:
    store = Store(url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            return await conn.run_sync(_differences)
    finally:
        await store.engine.dispose()


def test_the_migrations_build_the_schema_the_models_declare(tmp_path: Path) -> None:
    """A column or index added to the models without a migration (or the other way round) shows up here."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}"
    assert asyncio.run(_migrated_differences(url)) == []


async def _round_trip(url: str) -> tuple[list[str], int, int, list[Any]]:
    """Up to the newest with rows, one step down and back, then all the way down and back up.

    SQLite's foreign keys stay off, as the store keeps them while it migrates (tables are rebuilt to alter them).
    """
    engine = create_async_engine(url)

    def tasks(c: sa.Connection) -> int:
        return int(c.execute(sa.text("SELECT count(*) FROM tasks")).scalar() or 0)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
            await conn.run_sync(_fill)
        async with engine.begin() as conn:  # the newest migration's downgrade keeps the rows it does not own
            await conn.run_sync(lambda c: command.downgrade(_config(c), REVISIONS[-2]))
            kept_down = await conn.run_sync(tasks)
            await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
            kept_up = await conn.run_sync(tasks)
            await conn.run_sync(lambda c: c.execute(sa.text("DELETE FROM tasks")))
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_config(c), "base"))
            left = await conn.run_sync(lambda c: sorted(sa.inspect(c).get_table_names()))
            await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
            differences = await conn.run_sync(_differences)
        return left, kept_down, kept_up, differences
    finally:
        await engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(store_url: str) -> None:
    """An operator can step back a release: each downgrade undoes its upgrade, and upgrading again rebuilds it all."""
    left, kept_down, kept_up, differences = asyncio.run(_round_trip(store_url))
    assert (kept_down, kept_up) == (1, 1)
    assert left == ["alembic_version"]  # base: every table the migrations made is gone
    assert differences == []
