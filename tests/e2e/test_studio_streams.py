"""Stream modes "messages" and "events" side by side: the same request on `langgraph dev`
(langgraph-api, the reference) and on `draftloop serve`, read with langgraph-sdk; the SSE event
names and payload shapes must match.

Draftloop leaves the structured model calls (intent, research plan, judge) out of "messages",
as it does for "messages-tuple": the comparison is of the draft's and the finished piece's
messages. One backend is enough here: tests/e2e/test_langgraph_api_streams.py runs both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from devtools.fakes.writer import ScriptedWriter
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - fixtures: the draftloop server
    ASSISTANT_ID,
    REQUEST,
    Service,
    collect,
    graph_fakes,
    human,
    service,
    shared_fakes,
    shared_postgres,
)
from tests.e2e.test_studio import GRAPH_ID, DevServer, dev_server, studio_fakes, writer  # noqa: F401 - fixtures

pytestmark = [pytest.mark.studio, pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

CHAT_NODES = {"draft", "finalize"}
# LangGraph's metadata of a message or event, which both servers must send (each adds its own keys).
LANGGRAPH_METADATA = {"langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path",
                      "langgraph_checkpoint_ns", "thread_id", "run_id", "assistant_id", "graph_id"}


@pytest.fixture(scope="module")
def shared_backend() -> str:
    return "sqlite"


@pytest_asyncio.fixture(loop_scope="module")
async def clients(service: Service, dev_server: DevServer,  # noqa: F811 - the imported fixtures
                  writer: ScriptedWriter) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:  # noqa: F811
    ours, reference = get_client(url=service.url, headers=admin_headers()), get_client(url=dev_server.url)
    try:
        yield ours, reference
    finally:
        await ours.aclose()
        await reference.aclose()


async def run(sdk: LangGraphClient, assistant: str, modes: list[str]) -> list[StreamPart]:
    thread = await sdk.threads.create()
    parts = await collect(sdk.runs.stream(thread["thread_id"], assistant, input=human(REQUEST), stream_mode=modes))
    assert not [p for p in parts if p.event == "error"], parts[-1]
    return parts


def message_shapes(parts: list[StreamPart]) -> dict[str, Any]:
    """Per chat node: its messages' event names in order (a run of partials counted once), the
    keys of the messages sent, and whether LangGraph's metadata keys came with them."""
    nodes: dict[str, str] = {}
    sequences: dict[str, list[str]] = {}
    keys: set[tuple[str, ...]] = set()
    metadata_complete = True
    for part in parts:
        if part.event == "messages/metadata":
            for message_id, meta in part.data.items():
                nodes[message_id] = meta["metadata"]["langgraph_node"]
                sequences[message_id] = [part.event]
                metadata_complete &= LANGGRAPH_METADATA <= set(meta["metadata"])
        elif part.event in ("messages/partial", "messages/complete"):
            (message,) = part.data
            if sequences[message["id"]][-1] != part.event:
                sequences[message["id"]].append(part.event)
            if nodes[message["id"]] in CHAT_NODES:
                keys.add(tuple(sorted(message)))
    return {"sequences": sorted((nodes[m], tuple(s)) for m, s in sequences.items() if nodes[m] in CHAT_NODES),
            "message_keys": keys, "metadata_complete": metadata_complete}


def event_shapes(parts: list[StreamPart]) -> dict[str, Any]:
    run_id = parts[0].data["run_id"]
    events = [p.data for p in parts if p.event == "events"]
    root = events[0]
    return {
        "keys": {tuple(sorted(event)) for event in events},
        "kinds": {(event["event"], event["name"]) for event in events},
        "root": (root["event"], root["name"], root["run_id"] == run_id, root["parent_ids"]),
        "end": (events[-1]["event"], events[-1]["run_id"] == run_id),
        "metadata_complete": all(LANGGRAPH_METADATA <= set(e["metadata"]) for e in events
                                 if e["event"] == "on_chat_model_stream"),
        "hidden": [e["name"] for e in events if "langsmith:hidden" in (e["tags"] or [])],
    }


async def test_messages_mode_sends_what_langgraph_api_sends(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    ours, reference = clients
    expected = await run(reference, GRAPH_ID, ["messages"])
    got = await run(ours, ASSISTANT_ID, ["messages"])
    assert message_shapes(got) == message_shapes(expected)
    assert message_shapes(got)["sequences"] == [("draft", ("messages/metadata", "messages/partial")),
                                                ("finalize", ("messages/metadata", "messages/complete"))]
    assert message_shapes(got)["metadata_complete"]


async def test_events_mode_sends_what_langgraph_api_sends(clients: tuple[LangGraphClient, LangGraphClient]) -> None:
    ours, reference = clients
    expected = event_shapes(await run(reference, GRAPH_ID, ["events"]))
    got = event_shapes(await run(ours, ASSISTANT_ID, ["events"]))
    assert got["keys"] == expected["keys"] == {("data", "event", "metadata", "name", "parent_ids", "run_id", "tags")}
    assert got["kinds"] == expected["kinds"], (got["kinds"] ^ expected["kinds"])
    assert got["root"] == expected["root"] == ("on_chain_start", GRAPH_ID, True, [])
    assert got["end"] == expected["end"] == ("on_chain_end", True)
    assert got["metadata_complete"] and expected["metadata_complete"]
    assert got["hidden"] == expected["hidden"] == []


async def test_messages_events_and_values_together_send_the_same_event_names(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    ours, reference = clients
    modes = ["values", "messages", "events"]
    expected = {p.event for p in await run(reference, GRAPH_ID, modes)}
    got = {p.event for p in await run(ours, ASSISTANT_ID, modes)}
    # Draftloop ends every stream with "end" (which langgraph-sdk reads as the run's end): a
    # joining client tells a finished run from a dropped connection; langgraph dev just closes.
    assert got - {"end"} == expected == {"metadata", "values", "events", "messages/metadata", "messages/partial",
                                         "messages/complete"}
