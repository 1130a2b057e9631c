from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.migrate import alembic_config, upgrade_database
from storage.models import Base


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _newest_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_creates_every_model_table_and_stamps_head(database_url: str) -> None:
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(_table_names)
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    # The newest script, not a number written here: a new migration must not break this test.
    assert version == await asyncio.to_thread(_newest_revision)


async def test_migrated_schema_matches_models_exactly(migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.connect() as conn:
        diff = await conn.run_sync(_schema_diff)
    assert diff == []


async def test_upgrading_an_up_to_date_database_changes_nothing(migrated_database_url: str) -> None:
    await upgrade_database(migrated_database_url)
    engine = create_engine(migrated_database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    assert diff == []
