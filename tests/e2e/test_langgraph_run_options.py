"""Run options of the LangGraph Server API that `draftloop serve` implements: static breakpoints
(interrupt_before / interrupt_after), a run from an earlier checkpoint, a Command with update and
goto, and listing a thread's runs by status. Real langgraph-sdk client, real server process, on
SQLite and Postgres, with the model, Serper and Pexels behind loopback fakes."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient

from devtools.fakes.writer import GraphFakes
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide server and its fixtures
    ASSISTANT_ID,
    REQUEST,
    client,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


async def _status(client: LangGraphClient, thread_id: str) -> str:  # noqa: F811 - a helper's parameter named like the imported fixture
    return (await client.threads.get(thread_id))["status"]


# static breakpoints ----------------------------------------------------------------------------


async def test_interrupt_before_draft_stops_there_and_a_run_without_input_continues(
    client: LangGraphClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    paused = await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST), interrupt_before=["draft"])
    assert "result" not in paused
    state = await client.threads.get_state(tid)
    assert state["next"] == ["draft"]
    assert not state["values"].get("draft") and state["values"]["request"]["text"]
    assert "draft" not in graph_fakes.writer.calls
    assert await _status(client, tid) == "interrupted"
    [first] = await client.runs.list(tid)
    assert first["status"] == "interrupted"

    done = await client.runs.wait(tid, ASSISTANT_ID, input=None)
    assert done["result"]["passed"] is True
    assert "draft" in graph_fakes.writer.calls
    assert (await client.threads.get_state(tid))["next"] == []
    assert await _status(client, tid) == "idle"


async def test_interrupt_after_research_stops_before_draft_and_a_run_without_input_continues(
    client: LangGraphClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST), interrupt_after=["research"])
    state = await client.threads.get_state(tid)
    assert state["next"] == ["draft"]
    # research has run (its checkpoint is the one written after it), draft has not.
    assert "research" in state["values"]
    assert "draft" not in graph_fakes.writer.calls
    assert await _status(client, tid) == "interrupted"

    done = await client.runs.wait(tid, ASSISTANT_ID, input=None)
    assert done["result"]["passed"] is True
    assert (await client.threads.get_state(tid))["next"] == []
    assert await _status(client, tid) == "idle"


# checkpoints -----------------------------------------------------------------------------------


async def test_a_run_from_an_earlier_checkpoint_re_executes_from_that_point(
    client: LangGraphClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST))
    assert first["result"]["passed"] is True
    history = await client.threads.get_history(tid, limit=50)
    before_draft = [s for s in history if s["next"] == ["draft"]]
    assert len(before_draft) == 1, [s["next"] for s in history]
    chosen = before_draft[0]["checkpoint"]["checkpoint_id"]
    intents = graph_fakes.writer.calls.count("intent")
    drafts = graph_fakes.writer.calls.count("draft")

    again = await client.runs.wait(tid, ASSISTANT_ID, input=None, checkpoint_id=chosen)
    assert again["result"]["passed"] is True
    # draft onwards ran again; route_intent (before the checkpoint) did not.
    assert graph_fakes.writer.calls.count("draft") > drafts
    assert graph_fakes.writer.calls.count("intent") == intents
    after = await client.threads.get_history(tid, limit=100)
    children = [s for s in after if (s["parent_checkpoint"] or {}).get("checkpoint_id") == chosen]
    # The original successor and the fork's: the new run branched off the chosen checkpoint.
    assert len(children) == 2, [(s["checkpoint"]["checkpoint_id"], s["next"]) for s in children]
    state = await client.threads.get_state(tid)
    assert state["next"] == []
    assert state["checkpoint"]["checkpoint_id"] not in {s["checkpoint"]["checkpoint_id"] for s in history}


# commands --------------------------------------------------------------------------------------


async def test_a_command_with_update_and_goto_finalize_is_honoured(
    client: LangGraphClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST))
    state = await client.threads.get_state(tid)
    draft: dict[str, Any] = dict(state["values"]["draft"])
    draft["title"] = "A Title Set By Hand"
    drafts = graph_fakes.writer.calls.count("draft")

    done = await client.runs.wait(tid, ASSISTANT_ID, command={"update": {"draft": draft}, "goto": "finalize"})
    assert done["result"]["title"] == "A Title Set By Hand" != first["result"]["title"]
    assert done["draft"]["title"] == "A Title Set By Hand"
    # Straight to finalize: no new draft, no new route_intent.
    assert graph_fakes.writer.calls.count("draft") == drafts
    after = await client.threads.get_state(tid)
    assert after["next"] == [] and after["values"]["result"]["title"] == "A Title Set By Hand"
    assert [r["status"] for r in await client.runs.list(tid)] == ["success", "success"]


# listing runs ----------------------------------------------------------------------------------


async def test_runs_list_filters_by_status(client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST))
    await client.runs.wait(tid, ASSISTANT_ID, input=human(REQUEST), interrupt_before=["draft"])
    all_runs = await client.runs.list(tid)
    assert sorted(r["status"] for r in all_runs) == ["interrupted", "success"]
    success = await client.runs.list(tid, status="success")
    interrupted = await client.runs.list(tid, status="interrupted")
    assert [r["status"] for r in success] == ["success"]
    assert [r["status"] for r in interrupted] == ["interrupted"]
    assert {success[0]["run_id"], interrupted[0]["run_id"]} == {r["run_id"] for r in all_runs}
    assert await client.runs.list(tid, status="error") == []
    assert await client.runs.list(tid, status="pending") == []
