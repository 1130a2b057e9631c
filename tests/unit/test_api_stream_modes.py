"""Stream modes "messages" and "events" in the shapes langgraph-api sends (its stream.py,
astream_state): the message accumulator, the events filter, the mode mapping, and the driver
demultiplexing astream_events for the real content graph on the loopback fakes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, cast

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.constants import TAG_HIDDEN
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Interrupt
from typing_extensions import TypedDict

from app.engine.api_messages import COMPLETE, METADATA, PARTIAL, MessageStream
from app.engine.api_runs import (
    EVENTS,
    INTERNAL_MODES,
    jsonable,
    langgraph_modes,
    visible_event,
    wanted_modes,
    wants_events,
)
from app.engine.driver import request_input, stream_graph
from app.engine.events import EventBus
from app.engine.publishers import ApiRunPublisher
from devtools.fakes.writer import GraphFakes
from graph.builder import build_graph
from graph.context import DraftloopContext
from storage.models import Task

REQUEST = "Write a 300-word blog post about async Python for backend developers"
# The keys of an astream_events v2 event (langchain_core StreamEvent), as langgraph-api sends them.
EVENT_KEYS = {"event", "name", "run_id", "data", "tags", "metadata", "parent_ids"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recorder(interval: float = 0.0, clock: Clock | None = None) -> tuple[MessageStream, list[tuple[str, Any]]]:
    sent: list[tuple[str, Any]] = []
    stream = MessageStream(lambda event, data: sent.append((event, jsonable(data))), interval=interval,
                           clock=clock or Clock())
    return stream, sent


class Recording:
    """A Publisher that keeps what the driver hands it."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, Any]] = []
        self.current_node: str | None = None
        self.failed_node: str | None = None
        self.interrupts: list[Interrupt] = []
        self.flushed = 0

    async def started(self, task: Task) -> None:
        """Nothing to record."""

    async def handle(self, mode: str, chunk: Any) -> None:
        self.chunks.append((mode, chunk))

    async def flush(self) -> None:
        self.flushed += 1

    async def aclose(self) -> None:
        """Nothing to stop."""


def test_a_streamed_message_sends_its_metadata_once_then_partials_of_the_whole_text_so_far() -> None:
    stream, sent = recorder()
    meta = {"langgraph_node": "draft", "langgraph_step": 3}
    for piece in ("Async ", "Python ", "rocks"):
        stream.add(AIMessageChunk(content=piece, id="run-1"), meta)
    assert [event for event, _ in sent] == [METADATA, PARTIAL, PARTIAL, PARTIAL]
    assert sent[0][1] == {"run-1": {"metadata": meta}}
    texts = [data[0]["content"] for event, data in sent if event == PARTIAL]
    assert texts == ["Async ", "Async Python ", "Async Python rocks"]
    # langgraph-api sends the chunks so far as a message, not as a chunk.
    assert {data[0]["type"] for _, data in sent[1:]} == {"ai"} and sent[-1][1][0]["id"] == "run-1"


def test_a_whole_message_is_one_complete_event_after_its_metadata() -> None:
    stream, sent = recorder()
    stream.add(AIMessage(content="# Title\n\nBody", id="m-2"), {"langgraph_node": "finalize"})
    assert sent == [(METADATA, {"m-2": {"metadata": {"langgraph_node": "finalize"}}}),
                    (COMPLETE, [jsonable(AIMessage(content="# Title\n\nBody", id="m-2"))])]


def test_partials_within_the_interval_are_coalesced_and_the_latest_goes_out_before_anything_else() -> None:
    clock = Clock()
    stream, sent = recorder(interval=0.1, clock=clock)
    for step, piece in enumerate(("a", "b", "c")):
        clock.now = step * 0.01
        stream.add(AIMessageChunk(content=piece, id="one"), {})
    assert [(e, d[0]["content"]) for e, d in sent if e == PARTIAL] == [(PARTIAL, "a")] and stream.holding
    # Another message's first event waits for the held partial: the order stays the graph's.
    stream.add(AIMessageChunk(content="x", id="two"), {})
    assert [(e, d[0]["content"] if e != METADATA else next(iter(d))) for e, d in sent] == [
        (METADATA, "one"), (PARTIAL, "a"), (PARTIAL, "abc"), (METADATA, "two"), (PARTIAL, "x")]
    stream.flush()
    assert not stream.holding and len(sent) == 5


def test_a_whole_message_under_a_streamed_id_replaces_it_instead_of_failing_the_run() -> None:
    stream, sent = recorder()
    stream.add(AIMessageChunk(content="Hel", id="m"), {})
    stream.add(AIMessage(content="Hello", id="m"), {})
    assert [e for e, _ in sent] == [METADATA, PARTIAL, COMPLETE] and sent[-1][1][0]["content"] == "Hello"


def test_messages_and_events_modes_are_served_and_only_events_runs_pay_for_astream_events() -> None:
    assert wanted_modes(["messages"]) == wanted_modes(["messages-tuple"]) == ["messages"]
    assert wanted_modes(["events"]) == [] and langgraph_modes(["events"]) == list(INTERNAL_MODES)
    assert langgraph_modes(["values", "messages", "events"]) == [*INTERNAL_MODES, "values", "messages"]
    assert wants_events(["values", "events"]) and not wants_events(["values", "messages", "messages-tuple"])


def test_hidden_events_are_not_visible() -> None:
    event = {"event": "on_chain_start", "name": "__start__", "tags": ["graph:step:0", "langsmith:hidden"]}
    assert not visible_event(event)
    assert visible_event({**event, "tags": ["graph:step:1"]}) and visible_event({**event, "tags": None})


async def test_stream_graph_with_events_hands_over_the_graph_chunks_and_every_other_event(graph_fakes: GraphFakes) -> None:
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    run_id = uuid.uuid4()
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}, "run_id": run_id}
    publisher = Recording()
    try:
        finished = await stream_graph(graph, request_input(REQUEST, None), config, publisher,
                                      context=DraftloopContext(deps=deps),
                                      stream_mode=[*INTERNAL_MODES, "values"], events=True)
    finally:
        await deps.models.aclose()
    assert finished and publisher.flushed == 1
    modes = {mode for mode, _ in publisher.chunks}
    assert modes == {"tasks", "updates", "values", EVENTS}
    events = [chunk for mode, chunk in publisher.chunks if mode == EVENTS]
    assert all(set(event) == EVENT_KEYS for event in events)
    root = events[0]
    assert (root["event"], root["name"], root["run_id"], root["parent_ids"]) == ("on_chain_start", "draftloop",
                                                                                 str(run_id), [])
    assert events[-1]["event"] == "on_chain_end" and events[-1]["run_id"] == str(run_id)
    # The root's own stream came as its modes, not as events.
    assert not [e for e in events if e["event"] == "on_chain_stream" and e["run_id"] == str(run_id)]
    drafted = [e for e in events if e["event"] == "on_chat_model_stream" and e["metadata"]["langgraph_node"] == "draft"]
    assert drafted and "".join(str(e["data"]["chunk"].content) for e in drafted)
    assert {"route_intent", "research", "draft", "critique", "finalize"} <= {
        e["name"] for e in events if e["event"] == "on_chain_start"}
    values = [chunk for mode, chunk in publisher.chunks if mode == "values"]
    assert values[-1]["result"]["passed"] is True
    assert isinstance(values[0]["messages"][0], HumanMessage)


class RecordingBus:
    """EventBus.post's side of the bus: what the publisher stores, in order."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Any]] = []

    def post(self, task_id: str, event_type: str, data: dict[str, Any]) -> None:
        self.posted.append((event_type, data["payload"]))


class Counter(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def tiny_graph() -> Any:
    """A graph with a streaming model call, a node returning a whole message, and a run tagged
    "langsmith:hidden" (as LangGraph tags its own plumbing)."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))

    async def write(state: Counter) -> dict[str, Any]:
        await model.ainvoke(state["messages"])
        return {}

    async def reply(state: Counter) -> dict[str, Any]:
        return {"messages": [AIMessage(content="done")]}

    async def noop(state: Counter) -> dict[str, Any]:
        return {}

    async def bookkeeping(state: Counter) -> dict[str, Any]:
        return await RunnableLambda(noop, name="plumbing").ainvoke(state, {"tags": [TAG_HIDDEN]})

    builder = StateGraph(Counter)
    builder.add_node("write", write)
    builder.add_node("bookkeeping", bookkeeping)
    builder.add_node("reply", reply)
    builder.add_edge(START, "write")
    builder.add_edge("write", "bookkeeping")
    builder.add_edge("bookkeeping", "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=InMemorySaver(), name="draftloop")


async def run_tiny(modes: list[str]) -> list[tuple[str, Any]]:
    bus = RecordingBus()
    publisher = ApiRunPublisher(cast(EventBus, bus), "run-1", modes, flush_seconds=0.0)
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
    try:
        await stream_graph(tiny_graph(), {"messages": [HumanMessage("hi")]}, config, publisher,
                           context=cast(DraftloopContext, None), stream_mode=langgraph_modes(modes),
                           events=wants_events(modes))
    finally:
        await publisher.aclose()
    return bus.posted


async def test_the_api_publisher_sends_messages_events_and_leaves_hidden_runs_out() -> None:
    posted = await run_tiny(["messages", "events"])
    names = [name for name, _ in posted]
    assert set(names) == {EVENTS, METADATA, PARTIAL, COMPLETE}
    partials = [data[0]["content"] for name, data in posted if name == PARTIAL]
    assert partials[-1] == "one two three"
    assert [data[0]["content"] for name, data in posted if name == COMPLETE] == ["done"]
    started = [data["name"] for name, data in posted if name == EVENTS and data["event"] == "on_chain_start"]
    assert started[0] == "draftloop" and {"write", "bookkeeping", "reply"} <= set(started)
    assert "plumbing" not in started
    assert not [data for name, data in posted if name == EVENTS and TAG_HIDDEN in data["tags"]]


async def test_a_run_without_events_asked_streams_without_astream_events() -> None:
    posted = await run_tiny(["messages"])
    assert EVENTS not in {name for name, _ in posted}
    assert [name for name, _ in posted][:2] == [METADATA, PARTIAL]


async def test_a_partial_held_back_goes_out_when_its_interval_is_up_without_another_chunk() -> None:
    bus = RecordingBus()
    publisher = ApiRunPublisher(cast(EventBus, bus), "run-1", ["messages"], flush_seconds=0.05)
    meta = {"langgraph_node": "draft"}
    try:
        await publisher.handle("messages", (AIMessageChunk(content="Hel", id="m"), meta))
        await publisher.handle("messages", (AIMessageChunk(content="lo", id="m"), meta))
        assert [data[0]["content"] for name, data in bus.posted if name == PARTIAL] == ["Hel"]
        await asyncio.sleep(0.2)
        assert [data[0]["content"] for name, data in bus.posted if name == PARTIAL] == ["Hel", "Hello"]
    finally:
        await publisher.aclose()


async def test_structured_calls_stay_out_of_messages_as_they_do_of_messages_tuple() -> None:
    bus = RecordingBus()
    publisher = ApiRunPublisher(cast(EventBus, bus), "run-1", ["messages"], flush_seconds=0.0)
    await publisher.handle("messages", (AIMessageChunk(content='{"kind"', id="j"), {"langgraph_node": "critique"}))
    await publisher.handle("messages", (AIMessageChunk(content="Draft", id="d"), {"langgraph_node": "draft"}))
    assert [name for name, _ in bus.posted] == [METADATA, PARTIAL] and bus.posted[0][1] == {
        "d": {"metadata": {"langgraph_node": "draft"}}}
