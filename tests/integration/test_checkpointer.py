from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from storage.checkpoints import open_checkpointer


class CounterState(TypedDict):
    steps: Annotated[list[str], operator.add]
    total: int


def _first(state: CounterState) -> dict[str, Any]:
    return {"steps": ["first"], "total": state["total"] + 1}


def _second(state: CounterState) -> dict[str, Any]:
    return {"steps": ["second"], "total": state["total"] * 10}


def _tiny_graph(saver: BaseCheckpointSaver[Any], interrupt_before: list[str] | None = None) -> CompiledStateGraph[Any]:
    builder = StateGraph(CounterState)
    builder.add_node("first", _first)
    builder.add_node("second", _second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver, interrupt_before=interrupt_before)


async def test_checkpointed_state_survives_reopening_the_saver(database_url: str) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1"}}
    async with open_checkpointer(database_url) as saver:
        final = await _tiny_graph(saver).ainvoke({"steps": [], "total": 4}, config)
    assert final == {"steps": ["first", "second"], "total": 50}

    # New saver, new connections: what a restarted process would see.
    async with open_checkpointer(database_url) as reopened:
        snapshot = await _tiny_graph(reopened).aget_state(config)
        history = [state async for state in _tiny_graph(reopened).aget_state_history(config)]
        other_thread = await _tiny_graph(reopened).aget_state({"configurable": {"thread_id": "thread-2"}})
    assert snapshot.values == {"steps": ["first", "second"], "total": 50}
    assert snapshot.next == ()
    assert len(history) >= 3
    assert other_thread.values == {}


async def test_graph_interrupted_before_a_node_resumes_from_a_reopened_saver(database_url: str) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "thread-paused"}}
    async with open_checkpointer(database_url) as saver:
        await _tiny_graph(saver, interrupt_before=["second"]).ainvoke({"steps": [], "total": 1}, config)
    async with open_checkpointer(database_url) as reopened:
        graph = _tiny_graph(reopened)
        assert (await graph.aget_state(config)).next == ("second",)
        final = await graph.ainvoke(None, config)
    assert final == {"steps": ["first", "second"], "total": 20}

