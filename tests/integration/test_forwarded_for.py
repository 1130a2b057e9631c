"""Which client address a real `draftloop serve` process sees, for the login limit and the audit
trail: the connection's, whatever X-Forwarded-For says, unless FORWARDED_ALLOW_IPS names the
proxy the connection comes from.

uvicorn believes X-Forwarded-For from 127.0.0.1 by default, so these run against real server
processes, not the app in the test's loop, and the clients that matter connect from 127.0.0.1.
One server per setting, shared by its tests. Only one test per server reaches a limit on a
connecting address; the others are limited on made-up forwarded addresses and names of their
own, or send no login at all, so the order the tests run in does not matter.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devtools.identities import admin_headers
from tests.service_process import ServerProcess, served

pytestmark = pytest.mark.asyncio(loop_scope="module")

# /ready and start-up ask the model provider: a closed port answers at once. No task runs here.
NO_MODEL = {"LLM_PROVIDER": "ollama", "OLLAMA_BASE_URL": "http://127.0.0.1:9"}
AUDIT_TIMEOUT = 10.0


@asynccontextmanager
async def start(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> AsyncIterator[ServerProcess]:
    """A healthy server on its own SQLite file; the test admin (devtools/identities.py) reads the audit trail."""
    async with served(None, None, tmp_path_factory.mktemp(name), name=name, **NO_MODEL, **env) as (_, server):
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plain_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """Started as an operator would without a proxy: FORWARDED_ALLOW_IPS unset."""
    async with start(tmp_path_factory, "plain") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """Behind a reverse proxy on 127.0.0.1, which FORWARDED_ALLOW_IPS names."""
    async with start(tmp_path_factory, "proxied", FORWARDED_ALLOW_IPS="127.0.0.1") as server:
        yield server


def client_from(server: ServerProcess, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address``: what the server sees as the peer."""
    return httpx.AsyncClient(base_url=server.url, timeout=10.0,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


async def login(client: httpx.AsyncClient, username: str, forwarded_for: str, request_id: str,
                password: str = "a wrong guess") -> int:
    response = await client.post("/api/auth/token", data={"username": username, "password": password},
                                 headers={"X-Forwarded-For": forwarded_for, "X-Request-ID": request_id})
    return response.status_code


async def audited_clients(server: ServerProcess, request_id: str, count: int) -> list[str]:
    """The client address of each audit entry with ``request_id``, newest first, once all
    ``count`` are written (the trail writes in batches, a moment after the response)."""
    deadline = time.monotonic() + AUDIT_TIMEOUT
    items: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, headers=admin_headers(), timeout=10.0) as admin:
        while time.monotonic() < deadline:
            response = await admin.get("/api/audit", params={"limit": 200})
            assert response.status_code == 200, response.text
            items = [item for item in response.json()["items"] if item["request_id"] == request_id]
            if len(items) >= count:
                return [item["client"] for item in items]
            await asyncio.sleep(0.05)
    pytest.fail(f"{len(items)} of {count} audit entries with request id {request_id}\n{server.describe()}")


async def test_by_default_a_limited_client_stays_limited_whatever_x_forwarded_for_it_sends(
        plain_server: ServerProcess) -> None:
    request_id = uuid.uuid4().hex
    async with client_from(plain_server, "127.0.0.1") as client:
        # A new made-up address and a new name each time: only the real address ties them together.
        statuses = [await login(client, f"guess-{i}", f"203.0.113.{i}", request_id) for i in range(1, 7)]
    assert statuses == [401] * 5 + [429]
    assert await audited_clients(plain_server, request_id, 6) == ["127.0.0.1"] * 6


async def test_by_default_the_audit_trail_records_the_connecting_address_of_any_request(
        plain_server: ServerProcess) -> None:
    request_id = uuid.uuid4().hex
    async with client_from(plain_server, "127.0.0.1") as client:
        # Not a login (the other test may have limited this address): an anonymous write, denied.
        response = await client.post("/api/tasks", json={"request": "a post"},
                                     headers={"X-Forwarded-For": "198.51.100.1", "X-Request-ID": request_id})
    assert response.status_code == 401
    assert await audited_clients(plain_server, request_id, 1) == ["127.0.0.1"]


async def test_behind_the_named_proxy_each_forwarded_client_is_limited_and_audited_on_its_own(
        proxied_server: ServerProcess) -> None:
    request_id = uuid.uuid4().hex
    async with client_from(proxied_server, "127.0.0.1") as proxy:
        statuses = [await login(proxy, f"proxied-{i}", "203.0.113.7", request_id) for i in range(6)]
        assert statuses == [401] * 5 + [429]
        # Another client behind the same proxy is not held back by that one.
        assert await login(proxy, "proxied-other", "203.0.113.8", request_id) == 401
    assert await audited_clients(proxied_server, request_id, 7) == ["203.0.113.8"] + ["203.0.113.7"] * 6


async def test_behind_the_named_proxy_a_name_is_limited_across_forwarded_addresses(
        proxied_server: ServerProcess) -> None:
    request_id = uuid.uuid4().hex
    async with client_from(proxied_server, "127.0.0.1") as proxy:
        statuses = [await login(proxy, "spread-target", f"198.51.100.{i}", request_id) for i in range(10, 16)]
        assert statuses == [401] * 5 + [429]
        # That address may still try another name.
        assert await login(proxy, "spread-other", "198.51.100.15", request_id) == 401


async def test_x_forwarded_for_from_an_address_that_is_not_the_named_proxy_is_ignored(
        proxied_server: ServerProcess) -> None:
    request_id = uuid.uuid4().hex
    async with client_from(proxied_server, "127.0.0.4") as client:
        assert await login(client, "not-proxied", "192.0.2.1", request_id) == 401
    assert await audited_clients(proxied_server, request_id, 1) == ["127.0.0.4"]

