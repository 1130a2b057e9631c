"""The graph's long-term memory (graph/memory.py) in LangGraph's real store on SQLite and Postgres
(storage/store.py): a finished post is recorded for its user, the next post on a related topic
is prompted with the first's title and asked for another angle, and a style guide reaches the
prompt. The writer is the scripted fake over loopback, which keeps every draft prompt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.base import BaseStore

from devtools.fakes.writer import GraphFakes
from graph.builder import ContentGraph, build_graph
from graph.context import DraftloopContext
from graph.memory import style_namespace, topics_namespace
from storage.checkpoints import open_checkpointer
from storage.store import open_store

FIRST = "Write a 300-word blog post about green tea for busy parents"
SECOND = "Write a 300-word blog post about the benefits of green tea"
UNRELATED = "Write a 300-word blog post about Postgres indexes"


@pytest.fixture
async def memory(migrated_database_url: str) -> AsyncIterator[tuple[ContentGraph, BaseStore]]:
    async with open_checkpointer(migrated_database_url) as saver, open_store(migrated_database_url, saver) as store:
        yield build_graph(saver, store), store


def as_user(user: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}, "metadata": {"user_id": user}}


async def write(graph: ContentGraph, fakes: GraphFakes, text: str, config: dict[str, Any]) -> dict[str, Any]:
    deps = fakes.dependencies()
    try:
        return await graph.ainvoke({"messages": [HumanMessage(text)]}, config, context=DraftloopContext(deps=deps))
    finally:
        await deps.models.aclose()


def draft_prompts(fakes: GraphFakes) -> list[str]:
    return [prompt for prompt in fakes.writer.prompts if prompt.startswith("Write a")]


async def test_a_second_post_on_a_topic_is_prompted_with_the_first_title_and_asked_for_another_angle(
    memory: tuple[ContentGraph, BaseStore], graph_fakes: GraphFakes
) -> None:
    graph, store = memory
    first = await write(graph, graph_fakes, FIRST, as_user("ann"))
    title = first["result"]["title"]
    assert title and "Already written" not in draft_prompts(graph_fakes)[0]
    recorded = await store.asearch(topics_namespace("ann"))
    assert [item.value["title"] for item in recorded] == [title]

    await write(graph, graph_fakes, SECOND, as_user("ann"))
    second_prompt = draft_prompts(graph_fakes)[-1]
    assert "Already written on this topic" in second_prompt and f'"{title}"' in second_prompt
    assert "different angle" in second_prompt
    assert len(await store.asearch(topics_namespace("ann"))) == 2


async def test_another_user_or_an_unrelated_topic_gets_no_already_written_note(
    memory: tuple[ContentGraph, BaseStore], graph_fakes: GraphFakes
) -> None:
    graph, _ = memory
    await write(graph, graph_fakes, FIRST, as_user("ann"))
    await write(graph, graph_fakes, SECOND, as_user("bob"))
    await write(graph, graph_fakes, UNRELATED, as_user("ann"))
    later = draft_prompts(graph_fakes)[1:]
    assert len(later) == 2 and not any("Already written" in prompt for prompt in later)


async def test_the_users_style_guide_reaches_the_draft_prompt(
    memory: tuple[ContentGraph, BaseStore], graph_fakes: GraphFakes
) -> None:
    graph, store = memory
    await store.aput(style_namespace("ann"), "guide", {"text": "Use British spelling and no exclamation marks."})
    await write(graph, graph_fakes, UNRELATED, as_user("ann"))
    await write(graph, graph_fakes, UNRELATED, as_user("bob"))
    ann, bob = draft_prompts(graph_fakes)
    assert "style guide" in ann and "Use British spelling and no exclamation marks." in ann
    assert "style guide" not in bob


async def test_without_a_store_the_graph_drafts_and_remembers_nothing(graph_fakes: GraphFakes) -> None:
    graph = build_graph()
    state = await write(graph, graph_fakes, FIRST, as_user("ann"))
    assert state["result"]["passed"] is True
    assert "Already written" not in draft_prompts(graph_fakes)[0]
