from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import asyncpg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from storage.checkpoints import (
    READ_POOL_MAX_SIZE,
    WRITE_POOL_MAX_SIZE,
    PooledPostgresSaver,
    open_checkpointer,
    postgres_conninfo,
)

POSTGRES_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


class CounterState(TypedDict):
    steps: Annotated[list[str], operator.add]
    total: int


def _first(state: CounterState) -> dict[str, Any]:
    return {"steps": ["first"], "total": state["total"] + 1}


def _second(state: CounterState) -> dict[str, Any]:
    return {"steps": ["second"], "total": state["total"] * 10}


def _two_steps(
    state: type[Any], first: Any, second: Any, saver: BaseCheckpointSaver[Any], interrupt_before: list[str] | None = None
) -> CompiledStateGraph[Any]:
    """START -> first -> second -> END, the nodes named after their functions."""
    builder = StateGraph(state)
    builder.add_node(first.__name__.lstrip("_"), first)
    builder.add_node(second.__name__.lstrip("_"), second)
    builder.add_edge(START, first.__name__.lstrip("_"))
    builder.add_edge(first.__name__.lstrip("_"), second.__name__.lstrip("_"))
    builder.add_edge(second.__name__.lstrip("_"), END)
    return builder.compile(checkpointer=saver, interrupt_before=interrupt_before)


def _tiny_graph(saver: BaseCheckpointSaver[Any], interrupt_before: list[str] | None = None) -> CompiledStateGraph[Any]:
    return _two_steps(CounterState, _first, _second, saver, interrupt_before)


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



class ReviewState(TypedDict):
    steps: Annotated[list[str], operator.add]
    verdict: str


def _draft(state: ReviewState) -> dict[str, Any]:
    return {"steps": ["draft"]}


def _review(state: ReviewState) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "steps": state["steps"]})
    return {"steps": ["review"], "verdict": str(answer)}


def _review_graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any]:
    return _two_steps(ReviewState, _draft, _review, saver)


@POSTGRES_ONLY
async def test_the_stock_postgres_saver_reads_and_resumes_what_the_pooled_saver_wrote(database_url: str) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "review-1"}}
    async with open_checkpointer(database_url) as saver:
        assert isinstance(saver, PooledPostgresSaver)
        pooled = _review_graph(saver)
        await pooled.ainvoke({"steps": [], "verdict": ""}, config, durability="sync")
        written = await pooled.aget_state(config)
        written_history = [state.config async for state in pooled.aget_state_history(config)]
        async with AsyncPostgresSaver.from_conn_string(postgres_conninfo(database_url)) as stock_saver:
            stock = _review_graph(stock_saver)
            read = await stock.aget_state(config)
            read_history = [state.config async for state in stock.aget_state_history(config)]
            final = await stock.ainvoke(Command(resume="yes"), config, durability="sync")
        resumed = await pooled.aget_state(config)

    assert written.next == ("review",)
    assert [item.value for item in written.interrupts] == [{"question": "approve?", "steps": ["draft"]}]
    assert (read.values, read.next, read.interrupts, read.config) == (
        written.values, written.next, written.interrupts, written.config)
    assert read_history == written_history
    assert final == {"steps": ["draft", "review"], "verdict": "yes"}
    assert resumed.values == final and resumed.next == ()


@POSTGRES_ONLY
async def test_pending_writes_keep_the_first_copy_and_the_last_special_write(database_url: str) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "writes-1"}}
    async with open_checkpointer(database_url) as saver:
        graph = _review_graph(saver)
        await graph.ainvoke({"steps": [], "verdict": ""}, config, durability="sync")
        checkpoint_config = (await graph.aget_state(config)).config
        # A retried task writes its plain channels again: the first copy stays. Two writes to
        # one special index (an error recorded twice): the later one is what stands.
        await saver.aput_writes(checkpoint_config, [("steps", ["first"])], "task-a")
        await saver.aput_writes(checkpoint_config, [("steps", ["retried"])], "task-a")
        await saver.aput_writes(checkpoint_config, [("__error__", "early"), ("__error__", "late")], "task-b")
        async with AsyncPostgresSaver.from_conn_string(postgres_conninfo(database_url)) as stock_saver:
            stored = await stock_saver.aget_tuple(checkpoint_config)

    assert stored is not None
    writes = {(task_id, channel): value for task_id, channel, value in stored.pending_writes or []}
    assert writes[("task-a", "steps")] == ["first"]
    assert writes[("task-b", "__error__")] == "late"


@POSTGRES_ONLY
async def test_more_concurrent_runs_than_pooled_connections_all_checkpoint(database_url: str) -> None:
    async with open_checkpointer(database_url) as saver:
        graph = _tiny_graph(saver)
        runs = 3 * max(READ_POOL_MAX_SIZE, WRITE_POOL_MAX_SIZE)
        finals = await asyncio.gather(*(
            graph.ainvoke({"steps": [], "total": n}, {"configurable": {"thread_id": f"many-{n}"}}, durability="sync")
            for n in range(runs)))
        stored = [await graph.aget_state({"configurable": {"thread_id": f"many-{n}"}}) for n in range(runs)]

    assert [final["total"] for final in finals] == [(n + 1) * 10 for n in range(runs)]
    assert [state.values["total"] for state in stored] == [(n + 1) * 10 for n in range(runs)]


@POSTGRES_ONLY
async def test_checkpoint_writes_send_no_session_reset_after_each_statement(database_url: str) -> None:
    async with open_checkpointer(database_url) as saver:
        graph = _tiny_graph(saver)
        await asyncio.gather(*(
            graph.ainvoke({"steps": [], "total": n}, {"configurable": {"thread_id": f"reset-{n}"}}, durability="sync")
            for n in range(WRITE_POOL_MAX_SIZE)))
        # Each idle backend shows the last statement it ran: the writer's are checkpoint
        # writes, not asyncpg's default reset query sent after every use.
        observer = await asyncpg.connect(postgres_conninfo(database_url))
        try:
            last_queries = [row["query"] for row in await observer.fetch(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        finally:
            await observer.close()

    assert any("INSERT INTO checkpoint" in query for query in last_queries), last_queries
    assert not [query for query in last_queries if "RESET ALL" in query]
