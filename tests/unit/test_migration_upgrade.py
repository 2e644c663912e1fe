"""Upgrading a store that holds data: every migration from each earlier revision, on SQLite.

A fresh database passes through every migration with empty tables, where a
migration that rebuilds a table (SQLite's way to alter one) cannot trip over
the rows that reference it. Users upgrade databases with rows, so this fills
every table at each revision and upgrades from there to the newest.
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
