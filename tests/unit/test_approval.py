"""Approval offers exactly what ships: the attempt, its own verdict, and after a rejection the
redraft (with the rejected one beside it when it scored higher). Decisions are strict."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from devtools.fakes.writer import GraphFakes
from graph.builder import build_graph
from graph.configuration import GraphSettings
from graph.context import DraftloopContext
from graph.nodes.approval import InvalidDecision, parse_decision

REQUEST = "Write a 300-word blog post about async Python for backend developers"


class Thread:
    def __init__(self, fakes: GraphFakes, settings: GraphSettings | None = None) -> None:
        self.graph: CompiledStateGraph = build_graph(InMemorySaver())
        self.deps = fakes.dependencies(settings)
        self.config: dict[str, Any] = {"configurable": {"thread_id": str(uuid.uuid4())}}
        self.context = DraftloopContext(deps=self.deps, require_approval=True)

    async def send(self, value: Any) -> dict[str, Any]:
        return await self.graph.ainvoke(value, self.config, context=self.context)

    async def offer(self) -> dict[str, Any]:
        snapshot = await self.graph.aget_state(self.config)
        assert snapshot.next == ("approval",), snapshot.next
        return snapshot.interrupts[0].value

    async def attempts(self) -> dict[int, dict[str, Any]]:
        snapshot = await self.graph.aget_state(self.config)
        return {a["number"]: a for a in snapshot.values["attempts"]}


@pytest.fixture
async def thread(graph_fakes: GraphFakes) -> Any:
    made = Thread(graph_fakes, GraphSettings(max_revisions=1, research_enabled=False))
    yield made
    await made.deps.models.aclose()


async def test_the_interrupt_carries_the_attempt_with_its_own_verdict(graph_fakes: GraphFakes, thread: Thread) -> None:
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    offer = await thread.offer()
    attempt = (await thread.attempts())[offer["attempt"]]
    assert offer["attempt"] == 1
    assert (offer["markdown"], offer["score"], offer["passed"], offer["issues"]) == (
        attempt["markdown"], attempt["score"], attempt["passed"], attempt["issues"])
    assert "alternatives" not in offer


async def test_after_a_rejection_the_worse_redraft_is_offered_beside_the_rejected_one(
        graph_fakes: GraphFakes, thread: Thread) -> None:
    graph_fakes.writer.scores = [85, 60]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    await thread.send(Command(resume={"approved": False, "feedback": "Mention uvloop"}))
    offer = await thread.offer()
    attempts = await thread.attempts()
    assert offer["attempt"] == 2 and offer["markdown"] == attempts[2]["markdown"]
    assert offer["score"] == attempts[2]["score"] and offer["passed"] is False
    assert [a["attempt"] for a in offer["alternatives"]] == [1]
    assert "below attempt 1" in offer["note"] and '"attempt": 1' in offer["question"]


async def test_approving_ships_exactly_the_offered_redraft(graph_fakes: GraphFakes, thread: Thread) -> None:
    graph_fakes.writer.scores = [85, 60]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    await thread.send(Command(resume={"approved": False, "feedback": "Mention uvloop"}))
    attempts = await thread.attempts()
    state = await thread.send(Command(resume={"approved": True, "publish": True}))
    result = state["result"]
    assert result["markdown"].startswith(attempts[2]["markdown"].strip())
    assert (result["score"], result["passed"], result["attempt"]) == (attempts[2]["score"], False, 2)
    assert result["approval"] == {"approved": True, "feedback": "", "attempt": 2, "rejected": [1], "publish": True}


async def test_the_decision_can_name_the_rejected_attempt_that_scored_higher(
        graph_fakes: GraphFakes, thread: Thread) -> None:
    graph_fakes.writer.scores = [85, 60]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    await thread.send(Command(resume={"approved": False, "feedback": "Mention uvloop"}))
    attempts = await thread.attempts()
    state = await thread.send(Command(resume={"approved": True, "attempt": 1}))
    assert state["result"]["markdown"].startswith(attempts[1]["markdown"].strip())
    assert (state["result"]["score"], state["result"]["passed"]) == (attempts[1]["score"], True)


@pytest.mark.parametrize("answer", [{"approved": "false", "feedback": "no"}, "yes", {"approved": 1},
                                    {"approve": True}, {"approved": True, "attempt": 7}])
async def test_a_resume_that_is_not_a_decision_is_asked_again(graph_fakes: GraphFakes, thread: Thread,
                                                              answer: Any) -> None:
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    state = await thread.send(Command(resume=answer))
    assert "result" not in state
    offer = await thread.offer()
    assert offer["error"].startswith("The last answer was not a decision")
    # Asked again, a real decision goes through.
    state = await thread.send(Command(resume=True))
    assert state["result"]["approval"]["approved"] is True


def test_decisions_are_strict_and_name_the_field() -> None:
    assert parse_decision(False).approved is False
    assert parse_decision({"approved": True, "feedback": "ok", "publish": True}).publish is True
    with pytest.raises(InvalidDecision) as raised:
        parse_decision({"approved": "false"})
    assert (raised.value.field, raised.value.message) == ("approved", "must be a JSON boolean (true or false)")
    with pytest.raises(InvalidDecision, match="publish"):
        parse_decision({"approved": False, "publish": True})
    with pytest.raises(InvalidDecision, match="resume"):
        parse_decision("approve")
