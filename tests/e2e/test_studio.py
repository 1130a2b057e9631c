"""Studio tier: the graph as `langgraph dev` serves it to LangGraph Studio, driven by the real SDK.

One `langgraph dev` process serves the whole module (start-up costs seconds), so the fakes it
talks to are module-scoped too and every test here runs on the module's event loop. The server
builds its dependencies from the environment, exactly as it does for a developer opening Studio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from devtools.fakes.ollama import FakeOllama
from devtools.fakes.pexels import FAKE_PEXELS_KEY, FakePexels
from devtools.fakes.serper import FAKE_SERPER_KEY, FakeSerper
from devtools.fakes.writer import ScriptedWriter

pytestmark = [pytest.mark.studio, pytest.mark.asyncio(loop_scope="module")]

REPO_ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
GRAPH_ID = "draftloop"
REQUEST = "Write a 300-word blog post about async Python for backend developers"
STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 60.0
OUTPUT_TAIL = 200  # lines of server output kept for failure messages


@dataclass
class StudioFakes:
    ollama: FakeOllama
    serper: FakeSerper
    pexels: FakePexels


@dataclass
class DevServer:
    url: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    def tail(self) -> str:
        return "\n".join(self.output[-OUTPUT_TAIL:])


def _free_port() -> int:
    # The suite's free_port fixture is function-scoped; the module-scoped server needs its own.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(fakes: StudioFakes) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LLM_PROVIDER": "ollama",
        "OLLAMA_BASE_URL": fakes.ollama.base_url,
        "OLLAMA_MODEL": "llama3.2",
        # A broken fake should fail the run quickly, not after the production timeouts.
        "LLM_TIMEOUT": "20",
        "LLM_MAX_RETRIES": "0",
        "SERPER_API_KEY": FAKE_SERPER_KEY,
        "SERPER_BASE_URL": fakes.serper.base_url,
        "SERPER_TIMEOUT": "5",
        "PEXELS_API_KEY": FAKE_PEXELS_KEY,
        "PEXELS_BASE_URL": fakes.pexels.api_url,
        "PEXELS_TIMEOUT": "5",
        "QUALITY_THRESHOLD": "70",
        "MAX_REVISIONS": "2",
        "RESEARCH_TIMEOUT": "10",
        # The fake search results link to real sites: tests never read their pages.
        "RESEARCH_FETCH_PAGES": "false",
        "PYTHONUNBUFFERED": "1",
    })
    # Real keys in the developer's shell must not send the graph to a real provider.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
        env.pop(name, None)
    return env


async def _collect_output(stream: asyncio.StreamReader, sink: list[str]) -> None:
    # Draining the pipe keeps a chatty server from blocking on a full buffer.
    while line := await stream.readline():
        sink.append(line.decode(errors="replace").rstrip())


async def _wait_until_ready(server: DevServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                pytest.fail(f"langgraph dev exited with {server.process.returncode}:\n{server.tail()}")
            with contextlib.suppress(httpx.TransportError):
                response = await http.get(f"{server.url}/ok")
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.25)
    pytest.fail(f"langgraph dev did not answer GET /ok within {STARTUP_TIMEOUT:.0f}s:\n{server.tail()}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def studio_fakes() -> AsyncIterator[StudioFakes]:
    ollama = FakeOllama()
    await ollama.start()
    serper = await FakeSerper().start()
    pexels = await FakePexels().start()
    try:
        yield StudioFakes(ollama, serper, pexels)
    finally:
        await pexels.stop()
        await serper.stop()
        await ollama.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dev_server(studio_fakes: StudioFakes) -> AsyncIterator[DevServer]:
    assert LANGGRAPH.exists(), f"langgraph CLI not installed next to {sys.executable}"
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        str(LANGGRAPH), "dev", "--config", "langgraph.json", "--port", str(port), "--host", "127.0.0.1",
        # No reload: others edit the tree while tests run, and a reload mid-run would drop it.
        "--no-browser", "--no-reload",
        cwd=REPO_ROOT,
        env=_server_env(studio_fakes),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = DevServer(url=f"http://127.0.0.1:{port}", process=process)
    assert process.stdout is not None
    reader = asyncio.create_task(_collect_output(process.stdout, server.output))
    try:
        await _wait_until_ready(server)
        yield server
    finally:
        await _stop(process)
        await reader


@pytest.fixture
def writer(studio_fakes: StudioFakes) -> Iterator[ScriptedWriter]:
    """A fresh scripted model per test, so call logs and scores never leak between tests."""
    scripted = ScriptedWriter()
    studio_fakes.ollama.replies.clear()
    studio_fakes.ollama.responder = scripted
    yield scripted
    studio_fakes.ollama.responder = None


@pytest_asyncio.fixture(loop_scope="module")
async def client(dev_server: DevServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=dev_server.url)
    try:
        yield sdk
    finally:
        await sdk.aclose()


async def _stream(sdk: LangGraphClient, thread_id: str, server: DevServer, **kwargs: Any) -> list[StreamPart]:
    parts: list[StreamPart] = []

    async def consume() -> None:
        async for part in sdk.runs.stream(thread_id, GRAPH_ID, stream_mode=["updates", "values"], **kwargs):
            parts.append(part)

    try:
        await asyncio.wait_for(consume(), timeout=RUN_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"run did not finish within {RUN_TIMEOUT:.0f}s; events {[p.event for p in parts]}\n{server.tail()}")
    errors = [p for p in parts if p.event == "error"]
    assert not errors, f"run failed: {errors}\n{server.tail()}"
    return parts


def _updated_nodes(parts: list[StreamPart]) -> list[str]:
    return [node for p in parts if p.event == "updates" for node in p.data]


async def _schemas(sdk: LangGraphClient) -> dict[str, Any]:
    assistants = await sdk.assistants.search(graph_id=GRAPH_ID)
    return dict(await sdk.assistants.get_schemas(assistants[0]["assistant_id"]))


# Studio draws its input form from these schemas. langgraph dev logs the failure as a warning and
# answers null, so only this check notices.
async def test_studio_gets_json_schemas_for_the_graph_input_and_output(client: LangGraphClient) -> None:
    schemas = await _schemas(client)
    assert schemas["input_schema"] is not None, "no input schema: see the server's 'Failed to get input schema'"
    assert schemas["output_schema"] is not None, "no output schema"
    assert set(schemas["input_schema"]["properties"]) == {"messages", "request"}
    assert "result" in schemas["output_schema"]["properties"]


# Studio's context panel (where require_approval is set) comes from this schema.
async def test_studio_gets_a_json_schema_for_the_run_context(client: LangGraphClient) -> None:
    schemas = await _schemas(client)
    assert schemas["context_schema"] is not None, "no context schema: see 'Failed to get context schema'"
    assert set(schemas["context_schema"]["properties"]) == {"require_approval", "quality_threshold", "max_revisions"}


async def test_studio_run_streams_each_node_and_stores_a_passing_result(
    client: LangGraphClient, dev_server: DevServer, writer: ScriptedWriter
) -> None:
    assistants = await client.assistants.search(graph_id=GRAPH_ID)
    assert [a["graph_id"] for a in assistants] == [GRAPH_ID]
    thread = await client.threads.create()
    parts = await _stream(client, thread["thread_id"], dev_server,
                          input={"messages": [{"role": "user", "content": REQUEST}]})

    assert parts[0].event == "metadata" and parts[0].data["run_id"]
    nodes = _updated_nodes(parts)
    for node in ("route_intent", "research", "draft", "critique", "finalize"):
        assert node in nodes, f"no update from {node}: {nodes}"
    assert nodes.index("route_intent") < nodes.index("draft") < nodes.index("critique") < nodes.index("finalize")
    assert any(p.event == "values" for p in parts)

    state = await client.threads.get_state(thread["thread_id"])
    result = state["values"]["result"]
    assert result["passed"] is True
    assert result["title"].startswith("A practical guide")
    assert result["markdown"].startswith("# ")
    assert state["next"] == []
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score"]


async def test_studio_context_requires_approval_then_resume_finalizes(
    client: LangGraphClient, dev_server: DevServer, writer: ScriptedWriter
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    parts = await _stream(client, thread_id, dev_server,
                          input={"messages": [{"role": "user", "content": REQUEST}]},
                          context={"require_approval": True})
    assert "finalize" not in _updated_nodes(parts)

    paused = await client.threads.get_state(thread_id)
    assert paused["next"] == ["approval"]
    assert paused["interrupts"] and paused["interrupts"][0]["value"]["type"] == "approval"
    assert "result" not in paused["values"]

    final = await asyncio.wait_for(
        # As Studio's resume does: a bare command, no context; approval was fixed at route_intent.
        client.runs.wait(thread_id, GRAPH_ID, command={"resume": {"approved": True}}),
        timeout=RUN_TIMEOUT,
    )
    assert isinstance(final, dict), final
    assert final["result"]["passed"] is True
    assert final["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}
    done = await client.threads.get_state(thread_id)
    assert done["next"] == []
    assert writer.calls.count("draft") == 1
