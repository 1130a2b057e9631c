"""Copying a thread's checkpoints with the savers the service opens (SQLite and the pooled
Postgres saver): the copy reads back as the original, pending writes (an interrupt) included,
and resuming the copy leaves the original where it was."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from storage.checkpoint_copy import copy_thread_checkpoints
from storage.checkpoints import open_checkpointer


class Notes(TypedDict):
    notes: Annotated[list[str], operator.add]
    title: str


def _draft(state: Notes) -> dict[str, Any]:
    return {"notes": ["drafted"], "title": "a title"}


def _review(state: Notes) -> dict[str, Any]:
    answer = interrupt({"question": "publish?"})
    return {"notes": [f"reviewed: {answer}"]}


def _graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any]:
    builder = StateGraph(Notes)
    builder.add_node("draft", _draft)
    builder.add_node("review", _review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=saver)


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


async def test_a_copied_thread_reads_back_as_the_original_and_resumes_on_its_own(database_url: str) -> None:
    async with open_checkpointer(database_url) as saver:
        graph = _graph(saver)
        await graph.ainvoke({"notes": [], "title": ""}, _config("source"))
        history = [s async for s in graph.aget_state_history(_config("source"))]
        paused = await graph.aget_state(_config("source"))
        assert paused.interrupts  # a pending write the copy must carry

        copied = await copy_thread_checkpoints(saver, "source", "target")

        assert copied == len(history)
        copy_history = [s async for s in graph.aget_state_history(_config("target"))]
        assert [s.config["configurable"]["checkpoint_id"] for s in copy_history] == [
            s.config["configurable"]["checkpoint_id"] for s in history]
        assert [(s.values, s.next, s.metadata) for s in copy_history] == [(s.values, s.next, s.metadata) for s in history]
        copy_state = await graph.aget_state(_config("target"))
        assert [i.value for i in copy_state.interrupts] == [i.value for i in paused.interrupts]

        done = await graph.ainvoke(Command(resume="yes"), _config("target"))
        assert done["notes"] == ["drafted", "reviewed: yes"]
        assert (await graph.aget_state(_config("source"))).values == paused.values
        assert len([s async for s in graph.aget_state_history(_config("source"))]) == len(history)


async def test_copying_a_thread_without_checkpoints_copies_nothing(database_url: str) -> None:
    async with open_checkpointer(database_url) as saver:
        assert await copy_thread_checkpoints(saver, "nobody", "target") == 0
        assert [t async for t in saver.alist(_config("target"))] == []
