"""Stream modes "messages" and "events" of `draftloop serve`, read with the real langgraph-sdk
client on SQLite and Postgres: the event names and payload shapes langgraph-api sends, alone,
with other modes, and when a client joins a run's stream later."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.e2e.test_langgraph_api import (  # noqa: F401 - fixtures: one server per backend
    ASSISTANT_ID,
    REQUEST,
    RUN_TIMEOUT,
    client,
    collect,
    events,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

MESSAGE_EVENTS = {"messages/metadata", "messages/partial", "messages/complete"}
# astream_events (v2) keys, as langgraph-api sends each "events" event.
EVENT_KEYS = {"event", "name", "run_id", "data", "tags", "metadata", "parent_ids"}


def messages_by_id(parts: Iterable[StreamPart]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each message's events in order: (event name, its metadata or the message)."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for part in parts:
        if part.event == "messages/metadata":
            for message_id, meta in part.data.items():
                found.setdefault(message_id, []).append((part.event, meta["metadata"]))
        elif part.event in MESSAGE_EVENTS:
            (message,) = part.data
            found.setdefault(message["id"], []).append((part.event, message))
    return found


async def test_messages_mode_streams_the_draft_as_partials_and_the_finished_piece_as_complete(
    client: LangGraphClient,  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode="messages"))
    names = events(parts)
    assert names[0] == "metadata" and names[-1] == "end", names
    assert set(names[1:-1]) == MESSAGE_EVENTS, names
    by_id = messages_by_id(parts[1:-1])
    for message_id, sent in by_id.items():
        # Its metadata first and once, then its partials or its one complete.
        assert [name for name, _ in sent].count("messages/metadata") == 1 and sent[0][0] == "messages/metadata", sent
        assert len({name for name, _ in sent[1:]}) == 1, message_id
    state = await client.threads.get_state(thread["thread_id"])
    drafts = [sent for sent in by_id.values() if sent[0][1]["langgraph_node"] == "draft"]
    assert len(drafts) == 1
    texts = [message["content"] for name, message in drafts[0][1:]]
    assert {name for name, _ in drafts[0][1:]} == {"messages/partial"}
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    assert state["values"]["draft"]["title"] in texts[-1]
    assert {message["type"] for _, message in drafts[0][1:]} == {"ai"}
    # The structured calls (intent, plan, judge) are not chat.
    assert {sent[0][1]["langgraph_node"] for sent in by_id.values()} == {"draft", "finalize"}
    (complete,) = [sent for sent in by_id.values() if sent[0][1]["langgraph_node"] == "finalize"]
    assert [name for name, _ in complete] == ["messages/metadata", "messages/complete"]
    final = state["values"]["messages"][-1]
    assert (complete[1][1]["id"], complete[1][1]["content"], complete[1][1]["type"]) == (
        final["id"], final["content"], "ai")


async def test_events_mode_streams_the_graphs_nodes_and_model_calls_as_astream_events(
    client: LangGraphClient,  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode="events"))
    names = events(parts)
    assert names[0] == "metadata" and names[-1] == "end" and set(names[1:-1]) == {"events"}, set(names)
    run_id = parts[0].data["run_id"]
    body = [part.data for part in parts[1:-1]]
    assert all(set(event) == EVENT_KEYS for event in body)
    assert (body[0]["event"], body[0]["name"], body[0]["run_id"], body[0]["parent_ids"]) == (
        "on_chain_start", "draftloop", run_id, [])
    assert (body[-1]["event"], body[-1]["run_id"]) == ("on_chain_end", run_id)
    assert body[-1]["data"]["output"]["result"]["passed"] is True
    kinds = {event["event"] for event in body}
    assert {"on_chain_start", "on_chain_end", "on_chain_stream", "on_chat_model_start", "on_chat_model_stream",
            "on_chat_model_end"} <= kinds
    started = {event["name"] for event in body if event["event"] == "on_chain_start"}
    assert {"route_intent", "research", "draft", "critique", "finalize"} <= started
    tokens = [event for event in body if event["event"] == "on_chat_model_stream"
              and event["metadata"]["langgraph_node"] == "draft"]
    assert tokens and all(event["data"]["chunk"]["type"] == "AIMessageChunk" for event in tokens)
    assert all(run_id in event["parent_ids"] for event in tokens)
    # What LangGraph keeps out of values and updates stays out of events too.
    assert not [event for event in body if "langsmith:hidden" in (event["tags"] or [])]
    assert "__start__" not in started


async def test_messages_and_events_combine_with_values_in_one_stream(client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode=["values", "messages", "events"]))
    names = events(parts)
    assert set(names[1:-1]) == {"values", "events"} | MESSAGE_EVENTS, set(names)
    values = [part.data for part in parts if part.event == "values"]
    assert values[-1]["result"]["passed"] is True
    partials = [part.data[0]["content"] for part in parts if part.event == "messages/partial"]
    tokens = "".join(part.data["data"]["chunk"]["content"] for part in parts if part.event == "events"
                     and part.data["event"] == "on_chat_model_stream"
                     and part.data["metadata"]["langgraph_node"] == "draft")
    assert partials[-1] == tokens


async def test_messages_tuple_with_messages_sends_the_tuples_only_as_langgraph_api_does(client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode=["messages", "messages-tuple"]))
    assert set(events(parts)[1:-1]) == {"messages"}


async def test_a_messages_and_events_stream_joined_after_a_disconnect_resumes_from_last_event_id(
    client: LangGraphClient,  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    seen: list[StreamPart] = []
    run_id = ""
    async with asyncio.timeout(RUN_TIMEOUT):
        async for part in client.runs.stream(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                             stream_mode=["messages", "events"]):
            seen.append(part)
            if part.event == "metadata":
                run_id = part.data["run_id"]
            if len(seen) == 5:
                break  # the client goes away mid-run; the run goes on
    rest = await collect(client.runs.join_stream(thread["thread_id"], run_id, last_event_id=str(seen[-1].id)))
    assert events(rest)[-1] == "end"
    replay = await collect(client.runs.join_stream(thread["thread_id"], run_id))
    assert [(p.id, p.event, p.data) for p in seen + rest] == [(p.id, p.event, p.data) for p in replay]
    assert {"events"} | MESSAGE_EVENTS <= set(events(replay))
    partials = [part.data[0]["content"] for part in replay if part.event == "messages/partial"]
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["draft"]["title"] in partials[-1]
