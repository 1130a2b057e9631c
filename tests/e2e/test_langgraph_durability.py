"""Durability and browser access of the LangGraph Server API of `draftloop serve`: a background
run whose server is SIGKILLed mid-run is resumed by another server on the same database once the
lease expires, without redoing finished nodes; and CORS_ORIGINS replaces the default Studio origin.
Real langgraph-sdk client, real server processes, on SQLite and Postgres, with the model, Serper
and Pexels behind loopback fakes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import ASSISTANT_ID, REQUEST, ChatWriter, human
from tests.integration.conftest import (  # noqa: F401 - fixtures: sqlite + postgres params
    backend,
    database_url,
    postgres_database,
    postgres_test_database,
)
from tests.service_process import (
    ServiceLauncher,
    SlowJudge,
    schema_title,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

RUN_TIMEOUT = 60.0
CUSTOM_ORIGIN = "https://chat.example.test"
STUDIO_ORIGIN = "https://smith.langchain.com"


@pytest.fixture
async def launcher(graph_fakes: GraphFakes, database_url: str, tmp_path: Path) -> AsyncIterator[ServiceLauncher]:  # noqa: F811
    """Servers on each backend sharing one database, with the chat-aware scripted model."""
    writer = ChatWriter()
    graph_fakes.ollama.responder = writer
    graph_fakes.writer = writer
    servers = ServiceLauncher(service_env(graph_fakes, tmp_path, database_url), cwd=tmp_path)
    try:
        yield servers
    finally:
        await servers.close()
        print(servers.describe())  # shown only when the test failed


async def test_a_background_run_whose_server_is_killed_mid_critique_is_resumed_by_another_server(
    launcher: ServiceLauncher, graph_fakes: GraphFakes
) -> None:
    writer = graph_fakes.writer
    slow = SlowJudge(writer, latency=30.0)
    graph_fakes.ollama.responder = slow
    first = await launcher.start("lg-crash-a")
    sdk = get_client(url=first.url, headers=admin_headers())
    try:
        thread = await sdk.threads.create()
        tid = thread["thread_id"]
        run = await sdk.runs.create(tid, ASSISTANT_ID, input=human(REQUEST))
        # The critique call reaching the fake proves the draft step's checkpoint is saved.
        await wait_until(lambda: "score" in writer.calls, "critique call", launcher=launcher)
        assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "running"
        assert (await sdk.threads.get(tid))["status"] == "busy"
    finally:
        await sdk.aclose()
    await first.kill()
    assert first.returncode == -signal.SIGKILL
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score"]

    chat_before = len(graph_fakes.ollama.chat_requests)
    search_before = len(graph_fakes.serper.requests) + len(graph_fakes.pexels.server.requests)
    slow.latency = 0
    # Another worker id: it must wait for lg-crash-a's lease (LEASE_SECONDS=2) to expire.
    second = await launcher.start("lg-crash-b")
    sdk = get_client(url=second.url, headers=admin_headers())
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            joined = await sdk.runs.join(tid, run["run_id"])
            while (await sdk.runs.get(tid, run["run_id"]))["status"] in ("pending", "running"):
                await asyncio.sleep(0.1)
        assert joined["result"]["passed"] is True, joined
        finished = await sdk.runs.get(tid, run["run_id"])
        assert finished["status"] == "success", finished
        state = await sdk.threads.get_state(tid)
        assert state["next"] == [] and state["values"]["result"]["passed"] is True
        assert state["values"]["result"]["markdown"] == joined["result"]["markdown"]
        assert (await sdk.threads.get(tid))["status"] == "idle"
        assert [r["run_id"] for r in await sdk.runs.list(tid)] == [run["run_id"]]
    finally:
        await sdk.aclose()

    restarted = graph_fakes.ollama.chat_requests[chat_before:]
    assert [schema_title(body) for body in restarted] == ["CritiqueVerdict"], "only the critique may run again"
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score", "score"], "a finished node was redone"
    assert len(graph_fakes.serper.requests) + len(graph_fakes.pexels.server.requests) == search_before, \
        "research ran again"


async def test_cors_origins_replaces_the_default_studio_origin(launcher: ServiceLauncher) -> None:
    server = await launcher.start("lg-cors", CORS_ORIGINS=f"{CUSTOM_ORIGIN}/")
    preflight_headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"}
    async with httpx.AsyncClient(base_url=server.url, headers=admin_headers()) as http:
        allowed = await http.options("/threads", headers={"Origin": CUSTOM_ORIGIN, **preflight_headers})
        created = await http.post("/threads", json={}, headers={"Origin": CUSTOM_ORIGIN})
        refused = await http.options("/threads", headers={"Origin": STUDIO_ORIGIN, **preflight_headers})
        plain = await http.post("/threads", json={}, headers={"Origin": STUDIO_ORIGIN})

    assert allowed.status_code in (200, 204), allowed.text
    assert allowed.headers["access-control-allow-origin"] == CUSTOM_ORIGIN
    assert allowed.headers["access-control-allow-private-network"] == "true"
    assert "POST" in allowed.headers["access-control-allow-methods"].upper() \
        or allowed.headers["access-control-allow-methods"] == "*"

    assert created.status_code == 200, created.text
    assert created.headers["access-control-allow-origin"] == CUSTOM_ORIGIN
    exposed = {h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")}
    assert {"location", "content-location"} <= exposed

    # The default Studio origin is no longer trusted: no preflight approval, no readable response.
    assert refused.status_code >= 400 or "access-control-allow-origin" not in refused.headers, refused.headers
    assert refused.headers.get("access-control-allow-origin") not in (STUDIO_ORIGIN, "*")
    assert plain.headers.get("access-control-allow-origin") not in (STUDIO_ORIGIN, "*")
