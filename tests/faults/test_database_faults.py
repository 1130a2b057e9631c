"""A `draftloop serve` process on Postgres whose database goes away for ten seconds mid-run and
comes back: a loopback proxy (tests/db_proxy.py) in front of the real server refuses new
connections and closes the live ones, then listens again.

While the database is gone every request that needs it answers 503 with Retry-After (never
another 5xx) and /ready answers 503; /health stays 200. Once it is back nothing needs a
restart: the first requests succeed, the first POST /api/tasks included, the run that lost
its database is resumed from its checkpoint and completes within RECOVERY_BOUND, once, and the
process never held more connections than its budget (storage/connection_budget.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from devtools.fakes.writer import GraphFakes
from storage.connection_budget import MIGRATION_CONNECTIONS, POSTGRES_CONNECTIONS_PER_PROCESS
from tests.db_proxy import DatabaseProxy
from tests.faults.conftest import FAULT_ENV, ApiLog
from tests.integration.conftest import PostgresTestDatabase, reset_schema
from tests.service_process import ServerProcess, SlowJudge, served, stored_tasks, wait_for_status

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

REQUEST = "Write a 300-word blog post about async Python for backend developers, with a cover photo"
OUTAGE_SECONDS = 10.0
# How often the test asks the service for something while the database is away.
PROBE_EVERY = 0.5
# Each critique takes this long (under LLM_TIMEOUT, 1 s here), so that the run is inside the
# graph when the database goes.
JUDGE_SECONDS = 0.5
# After the database is back: the lease of the run that lost it lapses (LEASE_SECONDS=2 in
# tests/service_process.py), a poll (0.1 s) claims it again, and the rest of the run (at most
# three critiques of JUDGE_SECONDS) finishes against the fakes. Ten seconds on top for a busy
# machine.
RECOVERY_BOUND = 20.0
TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def outage_postgres(postgres_test_database: PostgresTestDatabase) -> PostgresTestDatabase:
    """The session's Postgres database (resolved in a sync fixture: it runs its own event loop)."""
    return postgres_test_database


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def database_proxy(outage_postgres: PostgresTestDatabase) -> AsyncIterator[DatabaseProxy]:
    await reset_schema(outage_postgres)
    async with DatabaseProxy(outage_postgres.url) as proxy:
        yield proxy


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outage_server(fault_fakes: GraphFakes, database_proxy: DatabaseProxy,
                        tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    async with served(fault_fakes, database_proxy.url, tmp_path_factory.mktemp("outage-serve"), name="outage",
                      **FAULT_ENV) as (_, server):
        yield server


@pytest.fixture
def api(fault_api: tuple[httpx.AsyncClient, ApiLog], fault_fakes: GraphFakes) -> Iterator[tuple[httpx.AsyncClient, ApiLog]]:
    client, log = fault_api
    log.responses.clear()
    fault_fakes.reset()
    try:
        yield client, log
    finally:
        fault_fakes.reset()


async def probe_while_down(client: httpx.AsyncClient, probe: httpx.AsyncClient, url: str, task_id: str,
                           seconds: float) -> list[httpx.Response]:
    """Every database-backed request the test sends in ``seconds``; /health must stay up.
    ``probe`` is a client without a token, as load balancers' probes are."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for method, path, body in (("GET", "/api/tasks", None), ("GET", f"/api/tasks/{task_id}", None),
                                   ("POST", "/api/tasks", {"request": REQUEST})):
            answers.append(await client.request(method, f"{url}{path}", json=body))
        # Probes send no token (with one, the token check would answer first).
        answers.append(await probe.get(f"{url}/ready"))
        health = await probe.get(f"{url}/health")
        assert health.status_code == 200
        await asyncio.sleep(PROBE_EVERY)
    return answers


async def test_a_ten_second_database_outage_mid_run_is_503s_then_full_recovery_without_a_restart(
    outage_server: ServerProcess, database_proxy: DatabaseProxy, outage_postgres: PostgresTestDatabase,
    fault_fakes: GraphFakes, api: tuple[httpx.AsyncClient, ApiLog],
) -> None:
    client, log = api
    fault_fakes.ollama.responder = SlowJudge(fault_fakes.writer, latency=JUDGE_SECONDS)
    # From here on only the server talks through the proxy (the test reads the database directly).
    database_proxy.peak = database_proxy.live
    created = await client.post(f"{outage_server.url}/api/tasks", json={"request": REQUEST})
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    await wait_for_status(client, outage_server.url, task_id, "running", timeout=10)

    await database_proxy.take_down()
    try:
        async with httpx.AsyncClient(timeout=10.0) as probe:
            answers = await probe_while_down(client, probe, outage_server.url, task_id, OUTAGE_SECONDS)
    finally:
        await database_proxy.restore()
    restored_at = time.monotonic()

    wrong = [(r.status_code, f"{r.request.method} {r.request.url.path}", r.text[:200])
             for r in answers if r.status_code != 503]
    assert not wrong, outage_server.tail()
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers if r.request.url.path != "/ready")
    ready = [r.json() for r in answers if r.request.url.path == "/ready"]
    assert ready and all(not body["checks"]["database"]["ok"] for body in ready)

    # The first request after the outage, on connections the outage closed: no 500, no 503.
    second = await client.post(f"{outage_server.url}/api/tasks", json={"request": REQUEST})
    assert second.status_code == 202, second.text
    ended = [await wait_for_status(client, outage_server.url, tid, *TERMINAL, timeout=RECOVERY_BOUND)
             for tid in (task_id, second.json()["id"])]
    recovered_in = time.monotonic() - restored_at

    assert [task["status"] for task in ended] == ["completed", "completed"], [task["error"] for task in ended]
    assert recovered_in < RECOVERY_BOUND
    async with httpx.AsyncClient(timeout=10.0) as probe:
        assert (await probe.get(f"{outage_server.url}/ready")).status_code == 200
    assert not [entry for entry in log.server_errors() if entry[0] != 503], log.server_errors()
    # The task that lost its database ran on from its checkpoint: one run resumed, not redone.
    stored = await stored_tasks(outage_postgres.url)
    first = stored[task_id]
    assert first.task.status == "completed"
    # Lost its database mid-run, so it was taken over exactly once after the outage.
    assert first.task.resume_count == 1
    assert first.attempt_numbers == list(range(1, len(first.attempt_numbers) + 1))
    assert all(row.task.status in TERMINAL for row in stored.values())
    assert database_proxy.peak <= POSTGRES_CONNECTIONS_PER_PROCESS + MIGRATION_CONNECTIONS
