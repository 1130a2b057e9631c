"""The fault tier's shared pieces: one `draftloop serve` per module and backend, its loopback
fakes, and a bench that posts a task, follows it to its end and checks what every fault test
promises (it ends within its bound, no 5xx, no resume, no lost or doubled work, no secret).

Server processes cost seconds to start, so a module shares one per backend between its tests
(the fixtures are module-scoped, and so is the event loop that serves the fakes: modules mark
their tests ``pytest.mark.asyncio(loop_scope="module")``). Each test starts from normal fakes
(``GraphFakes.reset``). A module that needs its own database URL (a proxy in front of the
real one) or settings builds its server with ``served()`` from ``fault_fakes`` and
``fault_database_url`` the same way ``fault_server`` does here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes, ScriptedWriter, open_graph_fakes
from devtools.identities import TEST_SECRET, admin_headers
from tests.integration import conftest as backend_fixtures
from tests.integration.conftest import BACKENDS, PostgresTestDatabase, reset_schema
from tests.service_process import (
    ServerProcess,
    SseEvent,
    events_of,
    follow_events,
    served,
    statuses,
    stored_tasks,
)

# In the Ollama URL the service is given: the client drops it, and no message may show it.
OLLAMA_CREDENTIAL = "ollama-proxy-secret-4b1d"
# Short outbound timeouts so that a hang costs seconds: each model call may take LLM_TIMEOUT,
# each search RESEARCH_TIMEOUT (every search of a round runs at once).
FAULT_ENV = {
    "LLM_TIMEOUT": "1",
    "RESEARCH_TIMEOUT": "2",
    "SERPER_TIMEOUT": "1",
    "PEXELS_TIMEOUT": "1",
}
SECRETS = (FAKE_SERPER_KEY, FAKE_PEXELS_KEY, TEST_SECRET, OLLAMA_CREDENTIAL)
TERMINAL = ("completed", "failed", "cancelled")

# The session's throwaway Postgres database (tests/integration/conftest.py, which pytest does not
# offer to this directory), bound here so that this tier shares it instead of making its own.
postgres_test_database = backend_fixtures.postgres_test_database


@pytest.fixture(scope="module", params=BACKENDS)
def fault_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def fault_postgres(fault_backend: str, request: pytest.FixtureRequest) -> PostgresTestDatabase | None:
    """The session's Postgres database on the postgres param (resolved in a sync fixture: the
    session fixture runs its own event loop)."""
    if fault_backend != "postgres":
        return None
    database: PostgresTestDatabase = request.getfixturevalue("postgres_test_database")
    return database


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fault_database_url(fault_postgres: PostgresTestDatabase | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database the module's server migrates itself."""
    if fault_postgres is None:
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('faults-db') / 'draftloop.db'}"
    await reset_schema(fault_postgres)
    return fault_postgres.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fault_fakes() -> AsyncIterator[GraphFakes]:
    async with open_graph_fakes() as fakes:
        yield fakes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fault_server(fault_fakes: GraphFakes, fault_database_url: str,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    ollama_url = fault_fakes.ollama.base_url.replace("://", f"://draftloop:{OLLAMA_CREDENTIAL}@", 1)
    async with served(fault_fakes, fault_database_url, tmp_path_factory.mktemp("faults-serve"), name="faults",
                      OLLAMA_BASE_URL=ollama_url, **FAULT_ENV) as (_, server):
        yield server


@dataclass
class ApiLog:
    """Every response the test's client got from the service, as (status, method and path)."""

    responses: list[tuple[int, str]] = field(default_factory=list)

    async def record(self, response: httpx.Response) -> None:
        self.responses.append((response.status_code, f"{response.request.method} {response.request.url.path}"))

    def server_errors(self) -> list[tuple[int, str]]:
        return [entry for entry in self.responses if entry[0] >= 500]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fault_api() -> AsyncIterator[tuple[httpx.AsyncClient, ApiLog]]:
    log = ApiLog()
    async with httpx.AsyncClient(headers=admin_headers(), timeout=10.0,
                                 event_hooks={"response": [log.record]}) as client:
        yield client, log


@dataclass
class FaultRun:
    """What one task looked like at its end, and how long it took from its POST."""

    task: dict[str, Any]
    events: list[SseEvent]
    attempts: list[dict[str, Any]]
    seconds: float


@dataclass
class FaultBench:
    fakes: GraphFakes
    writer: ScriptedWriter
    server: ServerProcess
    client: httpx.AsyncClient
    log: ApiLog
    database_url: str

    async def run(self, request: str, *, bound: float) -> FaultRun:
        """Post ``request``, follow its events until the stream closes (failing if that takes
        more than ``bound`` seconds), and check the promises every fault test shares."""
        started = time.monotonic()
        response = await self.client.post(f"{self.server.url}/api/tasks", json={"request": request})
        assert response.status_code == 202, response.text
        task_id = str(response.json()["id"])
        items, closed = await follow_events(self.client, f"{self.server.url}/api/tasks/{task_id}/events",
                                            timeout=bound)
        seconds = time.monotonic() - started
        assert closed
        task = (await self.client.get(f"{self.server.url}/api/tasks/{task_id}")).json()
        attempts = (await self.client.get(f"{self.server.url}/api/tasks/{task_id}/attempts")).json()["items"]
        events = events_of(items)
        run = FaultRun(task, events, attempts, seconds)
        await self._check(task_id, run)
        return run

    async def _check(self, task_id: str, run: FaultRun) -> None:
        assert run.task["status"] in TERMINAL
        # One run, one end: a second "running" would be a resume, a second end a run done twice.
        assert statuses(run.events) == ["queued", "running", run.task["status"]], statuses(run.events)
        assert not self.log.server_errors(), self.log.server_errors()
        stored = await stored_tasks(self.database_url)
        row = stored[task_id]
        assert (row.task.status, row.task.run_count, row.task.resume_count) == (run.task["status"], 1, 0)
        assert row.attempt_numbers == list(range(1, len(row.attempt_numbers) + 1))
        # Every task this server was given is there and ended: none lost along the way.
        assert all(other.task.status in TERMINAL for other in stored.values())
        shown = json.dumps([run.task, [e.data for e in run.events], run.attempts])
        assert not [secret for secret in SECRETS if secret in shown]
        assert "\\u0000" not in shown


@pytest.fixture
def fault_bench(fault_fakes: GraphFakes, fault_server: ServerProcess,
                fault_api: tuple[httpx.AsyncClient, ApiLog], fault_database_url: str) -> Iterator[FaultBench]:
    """The module's server and fakes, back to normal answers for this test."""
    writer = fault_fakes.reset()
    client, log = fault_api
    log.responses.clear()
    bench = FaultBench(fault_fakes, writer, fault_server, client, log, fault_database_url)
    try:
        yield bench
    finally:
        # Whatever the test left scripted must not reach the next one.
        fault_fakes.reset()
