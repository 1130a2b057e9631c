"""storage.errors.storage_unreachable on real failures: the drivers' own errors from a real
SQLite file, a real Postgres server and a refused loopback port, against the model client's
failures from the fake Ollama. A run resumes on the first kind and fails on every other."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from sqlalchemy import text

from devtools.fakes.ollama import FakeOllama
from storage.engine import create_engine
from storage.errors import storage_unreachable
from tests.integration.conftest import PostgresTestDatabase
from tools.llm.errors import ModelCallError
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings


async def test_a_refused_postgres_connection_counts_as_unreachable(free_port: int) -> None:
    # SQLAlchemy lets the connect's ConnectionRefusedError through unwrapped: a bare OSError.
    engine = create_engine(f"postgresql+asyncpg://127.0.0.1:{free_port}/draftloop")
    try:
        with pytest.raises(OSError) as caught:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert storage_unreachable(caught.value)


async def test_a_sqlite_file_that_cannot_be_opened_counts_as_unreachable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/draftloop.db")
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own type is what is under test
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert storage_unreachable(caught.value)


@pytest.mark.postgres
async def test_a_postgres_connection_killed_mid_session_counts_as_unreachable(
    postgres_test_database: PostgresTestDatabase,
) -> None:
    engine = create_engine(postgres_test_database.url)
    try:
        async with engine.connect() as connection:
            backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            killer = await asyncpg.connect(postgres_test_database.libpq_url)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", backend)
            finally:
                await killer.close()
            with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own type is what is under test
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert storage_unreachable(caught.value)


async def test_a_statement_the_database_refuses_is_not_unreachable(migrated_database_url: str) -> None:
    engine = create_engine(migrated_database_url)
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own type is what is under test
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO slug_counters (base, last) VALUES ('x', NULL)"))
    finally:
        await engine.dispose()

    assert not storage_unreachable(caught.value)


@pytest.mark.postgres
async def test_text_postgres_cannot_store_is_not_unreachable(postgres_test_database: PostgresTestDatabase) -> None:
    engine = create_engine(postgres_test_database.url)
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own type is what is under test
            async with engine.connect() as connection:
                await connection.execute(text("SELECT CAST(:value AS text)"), {"value": "a\x00b"})
    finally:
        await engine.dispose()

    assert not storage_unreachable(caught.value)


@pytest.mark.parametrize("fault", ["hang", "reset", "http_500"])
async def test_a_model_that_times_out_or_drops_the_connection_is_not_a_lost_database(
    fake_ollama: FakeOllama, fault: Literal["hang", "reset", "http_500"]
) -> None:
    fake_ollama.fail(fault)
    settings = LLMSettings(provider="ollama", ollama_base_url=fake_ollama.base_url, timeout=0.5)
    async with ModelProvider(settings) as provider:
        model = await provider.chat_model()
        async with asyncio.timeout(10):
            with pytest.raises(ModelCallError) as caught:
                await model.ainvoke("hello")

    assert not storage_unreachable(caught.value)


def test_a_connection_error_raised_outside_any_database_driver_is_not_unreachable() -> None:
    try:
        raise ConnectionResetError("peer reset the connection")
    except ConnectionResetError as exc:
        caught = exc

    assert not storage_unreachable(caught)
