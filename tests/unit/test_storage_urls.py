from __future__ import annotations

from pathlib import Path

import pytest

from storage.checkpoints import postgres_conninfo, sqlite_checkpoint_path
from storage.engine import database_url_from_env, normalize_database_url
from storage.migrate import sync_database_url
from storage.store import sqlite_store_path


def test_default_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    env = {"DATABASE_URL": " ", "DRAFTLOOP_DATA_DIR": str(data_dir)}
    assert database_url_from_env(env) == f"sqlite+aiosqlite:///{data_dir / 'draftloop.db'}"
    assert data_dir.is_dir()


def test_database_url_from_env_wins_over_the_data_dir(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgres://app:secret@db:5432/draftloop", "DRAFTLOOP_DATA_DIR": str(tmp_path / "unused")}
    assert database_url_from_env(env) == "postgresql+asyncpg://app:secret@db:5432/draftloop"
    assert not (tmp_path / "unused").exists()


def test_a_bad_database_url_is_refused_naming_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL names an unsupported database driver") as caught:
        database_url_from_env({"DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u:p%40ss@h:5433/db", "postgresql+asyncpg://u:p%40ss@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////var/lib/draftloop.db", "sqlite+aiosqlite:////var/lib/draftloop.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_unsupported_databases_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalize_database_url("mysql+aiomysql://u@h/db")


def test_migrations_use_blocking_drivers_for_the_same_database() -> None:
    assert sync_database_url("postgresql+asyncpg://u:p%40ss@h/db") == "postgresql+psycopg://u:p%40ss@h/db"
    assert sync_database_url("sqlite+aiosqlite:////tmp/x.db") == "sqlite+pysqlite:////tmp/x.db"


def test_sqlite_checkpoints_live_in_a_sibling_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'draftloop.db'}"
    assert sqlite_checkpoint_path(url) == str(tmp_path / "draftloop.checkpoints.db")
    assert sqlite_checkpoint_path("sqlite+aiosqlite://") == ":memory:"


def test_postgres_checkpointer_gets_a_plain_libpq_url() -> None:
    url = "postgresql+asyncpg://user:p%40ss@db.example:5433/draftloop"
    assert postgres_conninfo(url) == "postgresql://user:p%40ss@db.example:5433/draftloop"



def test_the_sqlite_store_lives_in_a_sibling_file_and_memory_stays_in_memory(tmp_path: Path) -> None:
    assert sqlite_store_path(f"sqlite+aiosqlite:///{tmp_path / 'draftloop.db'}") == str(tmp_path / "draftloop.store.db")
    assert sqlite_store_path("sqlite+aiosqlite:///:memory:") == ":memory:"
