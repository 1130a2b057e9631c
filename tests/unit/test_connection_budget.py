"""The per-process Postgres connection budget (storage/connection_budget.py) against the server
it has to fit: `serve --workers 2` (three processes) next to the test suite on one Postgres
with max_connections = 100."""

from __future__ import annotations

import re
from pathlib import Path

from storage.connection_budget import MIGRATION_CONNECTIONS, POSTGRES_CONNECTIONS, POSTGRES_CONNECTIONS_PER_PROCESS

MAX_CONNECTIONS = 100
# The most the test suite held at once on the shared server, measured before this budget.
TEST_SUITE_CONNECTIONS = 46
# Left free for psql sessions, monitoring and superuser_reserved_connections (3 by default).
HEADROOM = 10
DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def test_serve_with_two_workers_and_the_test_suite_fit_in_100_connections_with_room() -> None:
    processes = 3  # the API process and its two workers
    held = processes * (POSTGRES_CONNECTIONS_PER_PROCESS + MIGRATION_CONNECTIONS)

    assert held + TEST_SUITE_CONNECTIONS + HEADROOM <= MAX_CONNECTIONS


def test_the_budget_is_the_sum_of_every_pool_and_the_listener() -> None:
    assert set(POSTGRES_CONNECTIONS) == {"database", "database_autocommit", "checkpoint_reads",
                                         "checkpoint_writes", "listener"}
    assert POSTGRES_CONNECTIONS_PER_PROCESS == sum(POSTGRES_CONNECTIONS.values())


def test_the_deployment_docs_state_the_budget_the_code_enforces() -> None:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    stated = re.search(r"at most (\d+)\s+Postgres\s+connections\s+per\s+process", text)

    assert stated is not None
    assert int(stated.group(1)) == POSTGRES_CONNECTIONS_PER_PROCESS
