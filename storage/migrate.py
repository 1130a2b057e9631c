"""Programmatic `alembic upgrade head`, safe to call from async code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storage.engine import normalize_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant: every service process starting against one Postgres takes this lock so
# only one of them runs migrations at a time.
_MIGRATION_LOCK_KEY = 0x6472616674  # "draft"

_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic Config built in code, pointing at the migrations shipped inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # Passed as an attribute, not a main option: ConfigParser would choke on '%' in passwords.
        config.attributes["database_url"] = database_url
    return config


def sync_database_url(url: str) -> str:
    """The same database through a blocking driver, for Alembic running in a worker thread."""
    parsed = make_url(normalize_database_url(url))
    return parsed.set(drivername=_SYNC_DRIVERS[parsed.get_backend_name()]).render_as_string(hide_password=False)


async def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``.

    Alembic is synchronous and reads migration files from disk, so it runs in a worker thread
    with a blocking driver; the event loop never waits on it.
    """
    await asyncio.to_thread(_upgrade_sync, url, revision)


def _upgrade_sync(url: str, revision: str) -> None:
    engine = create_engine(sync_database_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
