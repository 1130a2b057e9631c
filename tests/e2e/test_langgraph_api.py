"""The LangGraph Server API of `draftloop serve`, driven by the real langgraph-sdk client (async
and sync) against a real server process, on SQLite and Postgres, with the model, Serper and
Pexels behind loopback fakes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from devtools.fakes.ollama import FakeOllama, OllamaReply
from devtools.fakes.pexels import FakePexels
from devtools.fakes.serper import FakeSerper
from devtools.fakes.writer import GraphFakes, ScriptedWriter
from devtools.identities import admin_headers, service_database_url
from tests.integration.conftest import (  # noqa: F401 - fixtures: sqlite + postgres params
    BACKENDS,
    PostgresTestDatabase,
    postgres_test_database,
    reset_schema,
)
from tests.service_process import ServerProcess, _drain, free_port, service_env

# One server per backend serves the whole module (each test works on threads of its own): a
# server process costs seconds of CPU to start, more than most of these tests take.
pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

DRAFTLOOP = Path(sys.executable).with_name("draftloop")
ASSISTANT_ID = "10fe4994-a5f9-58ca-8ce0-9df32262dd84"  # uuid5(langgraph-api's NAMESPACE_GRAPH, "draftloop")
REQUEST = "Write a 300-word blog post about async Python for backend developers"
RUN_TIMEOUT = 60.0


class ChatWriter(ScriptedWriter):
    """The scripted model, classifying each turn by its wording as a small model would:
    an edit instruction is a revision, a question an answer, anything else content."""

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        fmt = body.get("format")
        if isinstance(fmt, dict) and fmt.get("title") == "IntentChoice":
            text = str((body.get("messages") or [{}])[-1].get("content", "")).strip().lower()
            if text.startswith(("make", "shorten", "rewrite")):
                self.intent = {"kind": "revise", "confidence": 90, "reason": "an edit"}
            elif text.endswith("?"):
                self.intent = {"kind": "answer", "confidence": 90, "reason": "a question"}
            else:
                self.intent = {"kind": "content", "content_type": "blog_post", "confidence": 90, "reason": "a post"}
        return super().__call__(body)


async def start_server(env: dict[str, str], cwd: Path) -> ServerProcess:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(DRAFTLOOP), "serve", "--host", "127.0.0.1", "--port", str(port), cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    server = ServerProcess(name="api", url=f"http://127.0.0.1:{port}", process=process,
                           database_url=await service_database_url(env))
    assert process.stdout is not None
    server.reader = asyncio.create_task(_drain(process.stdout, server.output))
    await server.wait_healthy()
    return server


class Service:
    """One `draftloop serve` at a time on the test's database; restartable."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.server: ServerProcess | None = None

    async def start(self) -> ServerProcess:
        self.server = await start_server(self.env, self.cwd)
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.kill()
            if self.server.reader is not None and not self.server.reader.done():
                self.server.reader.cancel()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest.fixture(scope="module", params=BACKENDS)
def shared_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def shared_postgres(shared_backend: str, request: pytest.FixtureRequest) -> PostgresTestDatabase | None:
    if shared_backend != "postgres":
        return None
    return request.getfixturevalue("postgres_test_database")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_fakes() -> AsyncIterator[GraphFakes]:
    """The loopback model, Serper and Pexels for the module's server; each test gets its own
    writer on them (``graph_fakes``)."""
    ollama, serper, pexels = FakeOllama(), FakeSerper(), FakePexels()
    await ollama.start()
    await serper.start()
    await pexels.start()
    try:
        async with httpx.AsyncClient() as http:
            yield GraphFakes(ollama, serper, pexels, ScriptedWriter(), http)
    finally:
        await pexels.stop()
        await serper.stop()
        await ollama.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(shared_fakes: GraphFakes, shared_postgres: PostgresTestDatabase | None,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    workdir = tmp_path_factory.mktemp("langgraph-api")
    if shared_postgres is not None:
        await reset_schema(shared_postgres)
    env = service_env(shared_fakes, workdir / "data", None if shared_postgres is None else shared_postgres.url)
    svc = Service(env, workdir)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def graph_fakes(shared_fakes: GraphFakes, service: Service) -> GraphFakes:
    """The module's fakes with a fresh writer, so no test sees another's calls or latency."""
    writer = ChatWriter()
    shared_fakes.ollama.responder = writer
    shared_fakes.writer = writer
    return shared_fakes


@pytest_asyncio.fixture(loop_scope="module")
async def client(service: Service, graph_fakes: GraphFakes) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=service.url, headers=admin_headers())
    try:
        yield sdk
    finally:
        await sdk.aclose()


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def collect(parts: AsyncIterator[StreamPart]) -> list[StreamPart]:
    async with asyncio.timeout(RUN_TIMEOUT):
        return [part async for part in parts]


def events(parts: list[StreamPart]) -> list[str]:
    return [part.event for part in parts]


# discovery --------------------------------------------------------------------------------------


async def test_assistants_search_finds_the_system_assistant_and_its_graph_and_schemas(client: LangGraphClient) -> None:
    found = await client.assistants.search(graph_id="draftloop")
    assert [a["assistant_id"] for a in found] == [ASSISTANT_ID]
    assert (await client.assistants.get("draftloop"))["assistant_id"] == ASSISTANT_ID
    graph = await client.assistants.get_graph(ASSISTANT_ID)
    assert {"route_intent", "research", "draft", "critique", "approval", "finalize"} <= {n["id"] for n in graph["nodes"]}
    schemas = await client.assistants.get_schemas(ASSISTANT_ID)
    assert {"messages", "request"} <= set(schemas["input_schema"]["properties"])
    assert "require_approval" in schemas["context_schema"]["properties"]
    assert await client.assistants.get_subgraphs(ASSISTANT_ID) == {}


async def test_assistant_search_accepts_a_text_plain_body_as_studio_sends_it(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        response = await http.post("/assistants/search", content=b'{"limit": 10}', headers={"Content-Type": "text/plain"})
        info = await http.get("/info")
    assert response.status_code == 200 and response.json()[0]["assistant_id"] == ASSISTANT_ID
    assert info.status_code == 200


async def test_cors_preflight_from_studio_allows_private_network_and_exposes_location(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        preflight = await http.options("/threads", headers={
            "Origin": "https://smith.langchain.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true"})
        created = await http.post("/threads", json={}, headers={"Origin": "https://smith.langchain.com"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "https://smith.langchain.com"
    assert preflight.headers["access-control-allow-private-network"] == "true"
    exposed = created.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "content-location" in exposed


# threads and state -----------------------------------------------------------------------------


async def test_a_run_leaves_state_and_history_and_update_state_forks_a_checkpoint(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"owner": "e2e"})
    assert thread["status"] == "idle"
    result = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    assert result["result"]["passed"] is True
    found = await client.threads.search(metadata={"owner": "e2e"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]] and found[0]["status"] == "idle"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == [] and state["values"]["result"]["title"]
    assert state["checkpoint"]["thread_id"] == thread["thread_id"]
    history = await client.threads.get_history(thread["thread_id"], limit=3)
    assert len(history) == 3
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert history[1]["checkpoint"]["checkpoint_id"] == history[0]["parent_checkpoint"]["checkpoint_id"]
    older = await client.threads.get_history(thread["thread_id"], limit=2, before=history[0]["checkpoint"])
    assert older[0]["checkpoint"] == history[1]["checkpoint"]
    at = await client.threads.get_state(thread["thread_id"], checkpoint_id=history[2]["checkpoint"]["checkpoint_id"])
    assert at["checkpoint"] == history[2]["checkpoint"]

    updated = await client.threads.update_state(thread["thread_id"], {"feedback": "edited by hand"})
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["feedback"] == "edited by hand"
    assert updated["checkpoint"]["checkpoint_id"] != state["checkpoint"]["checkpoint_id"]
    fork = await client.threads.update_state(
        thread["thread_id"], None, as_node="__copy__", checkpoint_id=history[1]["checkpoint"]["checkpoint_id"])
    forked = await client.threads.get_state(thread["thread_id"])
    assert forked["checkpoint"]["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    # __copy__ makes a sibling of the copied checkpoint: same values, same parent, new id.
    assert forked["values"] == history[1]["values"]
    assert forked["parent_checkpoint"] == history[1]["parent_checkpoint"]


# streaming -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["values", "updates", "messages-tuple", "debug", "custom"])
async def test_runs_stream_sends_metadata_first_then_the_requested_mode_and_end_last(
    client: LangGraphClient, mode: str
) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), stream_mode=mode))
    names = events(parts)
    assert names[0] == "metadata" and names[-1] == "end", names
    assert set(parts[0].data) == {"run_id", "attempt"}
    body = [part for part in parts[1:-1]]
    expected = "messages" if mode == "messages-tuple" else mode
    assert {part.event for part in body} <= {expected}, names
    if mode == "values":
        assert body[-1].data["result"]["passed"] is True
    elif mode == "updates":
        assert [next(iter(p.data)) for p in body][-1] == "finalize"
    elif mode == "messages-tuple":
        chunk, meta = body[0].data
        assert chunk["type"] in ("AIMessageChunk", "ai") and meta["langgraph_node"] in ("draft", "finalize")
        assert "".join(str(p.data[0]["content"]) for p in body if p.data[1]["langgraph_node"] == "draft")
    elif mode == "debug":
        checkpoints = [p.data for p in body if p.data["type"] == "checkpoint"]
        assert checkpoints and checkpoints[-1]["payload"]["checkpoint"]["thread_id"] == thread["thread_id"]
        assert checkpoints[-1]["payload"]["parent_checkpoint"]["checkpoint_id"]
    elif mode == "custom":
        # What nodes write themselves: research reports every search as it finishes.
        assert body and {p.data["type"] for p in body} == {"research_query"}
        assert {p.data["kind"] for p in body} >= {"web", "news"}


async def test_a_stream_joined_after_a_disconnect_resumes_from_last_event_id(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    seen: list[StreamPart] = []
    run_id = ""
    async with asyncio.timeout(RUN_TIMEOUT):
        async for part in client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode="updates"):
            seen.append(part)
            if part.event == "metadata":
                run_id = part.data["run_id"]
            if len(seen) == 2:
                break  # the client goes away mid-run; the run goes on
    rest = await collect(client.runs.join_stream(thread["thread_id"], run_id, last_event_id=str(seen[-1].id)))
    assert events(rest)[-1] == "end"
    replay = await collect(client.runs.join_stream(thread["thread_id"], run_id))
    ids = [p.id for p in replay]
    assert [p.id for p in seen] + [p.id for p in rest] == ids
    assert (await client.runs.get(thread["thread_id"], run_id))["status"] == "success"


async def test_a_cancelled_run_ends_its_stream_and_leaves_the_thread_idle(client: LangGraphClient, service: Service,
                                                                         graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30.0
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    async with asyncio.timeout(RUN_TIMEOUT):
        while (await client.threads.get(thread["thread_id"]))["status"] != "busy":
            await asyncio.sleep(0.05)
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    parts = await collect(client.runs.join_stream(thread["thread_id"], run["run_id"]))
    assert events(parts)[-1] == "end"
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


# human in the loop ------------------------------------------------------------------------------


async def test_approval_interrupt_shows_in_state_and_stream_and_a_resume_command_finishes(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             context={"require_approval": True}, stream_mode="updates"))
    interrupts = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert interrupts and interrupts[0][0]["value"]["type"] == "approval"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["approval"] and state["interrupts"][0]["value"]["type"] == "approval"
    assert state["tasks"][0]["interrupts"][0]["id"] == state["interrupts"][0]["id"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    done = await client.runs.wait(thread["thread_id"], ASSISTANT_ID,
                                  command={"resume": {"approved": True, "feedback": ""}})
    assert done["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_require_approval_in_config_configurable_also_pauses(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    waited = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                    config={"configurable": {"require_approval": True}})
    assert waited["__interrupt__"][0]["value"]["type"] == "approval"


# chat ------------------------------------------------------------------------------------------


async def test_multi_turn_chat_revises_from_state_and_answers_about_sources_without_drafting(
    client: LangGraphClient, graph_fakes: GraphFakes
) -> None:
    thread = await client.threads.create()
    first = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    second = await client.runs.wait(thread["thread_id"], ASSISTANT_ID,
                                    input={"messages": [{"type": "human", "content": "Make it shorter and more casual"}]})
    assert second["intent"]["kind"] == "revise"
    assert first["result"]["markdown"] in graph_fakes.writer.prompts[-1]
    drafts = graph_fakes.writer.calls.count("draft")
    third = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human("What sources did you use?"))
    assert graph_fakes.writer.calls.count("draft") == drafts
    reply = third["messages"][-1]
    assert reply["type"] == "ai" and first["result"]["sources"][0]["url"] in reply["content"]
    runs = await client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success"] * 3


# stateless, validation, restart -----------------------------------------------------------------


async def test_a_stateless_run_streams_and_waits_on_a_temporary_thread(client: LangGraphClient) -> None:
    parts = await collect(client.runs.stream(None, ASSISTANT_ID, input=human(REQUEST), stream_mode="values"))
    assert events(parts)[0] == "metadata" and events(parts)[-1] == "end"
    waited = await client.runs.wait(None, ASSISTANT_ID, input=human(REQUEST))
    assert waited["result"]["passed"] is True
    assert await client.threads.search(metadata={"temporary": True}) == []


@pytest.mark.parametrize(("extra", "field"), [
    ({"webhook": "https://example.com/hook"}, "webhook"),
    ({"stream_mode": "tools"}, "stream_mode"),
    ({"multitask_strategy": "rollback"}, "multitask_strategy"),
    ({"context": {"temperature": 0.1}}, "context.temperature"),
])
async def test_a_field_the_server_cannot_honour_is_a_422_naming_it(
    client: LangGraphClient, extra: dict[str, Any], field: str
) -> None:
    thread = await client.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), **extra)
    assert caught.value.response.status_code == 422
    assert field in caught.value.response.json()["detail"]


async def test_reject_strategy_answers_409_while_the_thread_is_busy(client: LangGraphClient,
                                                                     graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 2.0
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), multitask_strategy="reject")
    assert caught.value.response.status_code == 409
    queued = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human("Make it shorter"),
                                      multitask_strategy="enqueue")
    await client.runs.join(thread["thread_id"], first["run_id"])
    await client.runs.join(thread["thread_id"], queued["run_id"])
    assert (await client.runs.get(thread["thread_id"], queued["run_id"]))["status"] == "success"


async def test_a_thread_survives_a_server_restart_with_its_history(service: Service) -> None:
    sdk = get_client(url=service.url, headers=admin_headers())
    thread = await sdk.threads.create()
    await sdk.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    before = await sdk.threads.get_history(thread["thread_id"], limit=50)
    await sdk.aclose()
    await service.stop()
    await service.start()
    sync = get_sync_client(url=service.url, headers=admin_headers())

    def read_back() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # The sync client blocks: it runs off the event loop.
        return sync.threads.get(thread["thread_id"]), sync.threads.get_history(thread["thread_id"], limit=50)

    try:
        again, after = await asyncio.to_thread(read_back)
    finally:
        await asyncio.to_thread(sync.close)
    assert again["status"] == "idle" and again["values"]["result"]["passed"] is True
    assert [s["checkpoint"] for s in after] == [s["checkpoint"] for s in before]
