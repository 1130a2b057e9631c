"""Suite-wide fixtures: blockbuster on every async test, loopback fakes, Postgres availability."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from blockbuster import BlockBuster, blockbuster_ctx

pytest_plugins = ["tests.fake_servers"]

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres")


def _allow_known_false_positives(bb: BlockBuster) -> None:
    """Blocking calls that happen once at connect/set-up time inside libraries, not per request."""
    for name in ("os.stat", "os.path.abspath", "os.getcwd"):
        if name in bb.functions:
            bb.functions[name].can_block_in("asyncpg/connect_utils.py", {"_parse_connect_dsn_and_args", "_parse_hostlist", "_read_password_from_pgpass", "_dot_postgresql_path", "_validate_port_spec", "_parse_connect_arguments"})
            bb.functions[name].can_block_in("sqlalchemy/dialects/sqlite/pysqlite.py", {"create_connect_args"})
            bb.functions[name].can_block_in("sqlalchemy/dialects/sqlite/aiosqlite.py", {"create_connect_args"})
    # Imports done lazily inside the loop read module files; that is start-up cost, not I/O per request.
    for name in list(bb.functions):
        if name.startswith(("os.", "io.", "builtins.open")):
            bb.functions[name].can_block_in("<frozen importlib._bootstrap_external>", {"get_data", "path_stats", "_path_stat", "_fill_cache", "get_code", "_path_is_mode_type", "_path_isfile", "_path_isdir", "find_spec"})
            bb.functions[name].can_block_in("<frozen importlib._bootstrap>", {"_find_and_load", "_find_spec", "_load_unlocked"})
            bb.functions[name].can_block_in("importlib/metadata/__init__.py", {"read_text", "search", "__init__", "lookup", "zip_children", "mtime", "children"})
            bb.functions[name].can_block_in("importlib/util.py", {"find_spec"})


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Any blocking call made from the event loop fails the test."""
    if "no_blockbuster" in request.keywords:
        yield None
        return
    with blockbuster_ctx() as bb:
        _allow_known_false_positives(bb)
        yield bb


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip when Postgres is absent, unless REQUIRE_POSTGRES=1 (CI), where absence is a failure."""
    if _postgres_reachable():
        return
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail("REQUIRE_POSTGRES=1 but no Postgres answers on 127.0.0.1:5432")
    pytest.skip("Postgres is not running on 127.0.0.1:5432")


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    # No Authorization header: this client also makes the graph's outbound calls (Serper,
    # Pexels), which must never carry our token. Tests of our API add it (devtools/identities.py).
    async with httpx.AsyncClient() as client:
        yield client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_blockbuster: the test deliberately runs blocking code")
