"""Each content type is written from its own prompt and comes out in its own shape (on fakes)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from devtools.fakes.writer import GraphFakes
from graph import draft_text
from graph.builder import build_graph
from graph.context import DraftloopContext
from graph.gates import format_checks
from graph.prompts import FORMATS


async def run(fakes: GraphFakes, text: str) -> dict[str, Any]:
    graph = build_graph(InMemorySaver())
    deps = fakes.dependencies()
    try:
        return await graph.ainvoke({"messages": [HumanMessage(text)]},
                                   {"configurable": {"thread_id": str(uuid.uuid4())}},
                                   context=DraftloopContext(deps=deps))
    finally:
        await deps.models.aclose()


def draft_request(fakes: GraphFakes) -> dict[str, Any]:
    return next(r for r in fakes.ollama.chat_requests if not r.get("format")
                and "Write a" in str(r["messages"][-1]["content"]))


@pytest.mark.parametrize(("text", "content_type", "format_key"), [
    ("Write a tweet about passkeys replacing passwords", "social_post", "social_post_x"),
    ("Write a LinkedIn post about passkeys replacing passwords", "social_post", "social_post_linkedin"),
    ("Write an email to customers about passkeys replacing passwords", "email", "email"),
    ("Write a newsletter about passkeys replacing passwords", "newsletter", "newsletter"),
    ("Write a research brief on passkeys replacing passwords", "research_brief", "research_brief"),
    ("Write a blog post about passkeys replacing passwords", "blog_post", "blog_post"),
])
async def test_each_type_is_written_from_its_own_format_and_ships_in_it(
        graph_fakes: GraphFakes, text: str, content_type: str, format_key: str) -> None:
    graph_fakes.writer.intent = {"kind": "content", "content_type": content_type, "confidence": 90, "reason": "x"}
    state = await run(graph_fakes, text)
    system = draft_request(graph_fakes)["messages"][0]["content"]
    assert FORMATS[format_key] in system and "Today is 20" in system
    result = state["result"]
    assert result["content_type"] == content_type and result["passed"] is True
    assert format_checks.format_problems(result["markdown"], content_type, state["request"].get("platform"),
                                 len(result["sources"])) == []
    if content_type in ("blog_post", "research_brief"):
        assert "\n## Sources\n" in result["markdown"]
    else:
        assert "## Sources" not in result["markdown"]


async def test_a_tweet_ships_without_headings_within_280_characters(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "content", "content_type": "social_post", "confidence": 90, "reason": "x"}
    state = await run(graph_fakes, "Write a tweet about passkeys replacing passwords")
    markdown = state["result"]["markdown"]
    assert state["request"]["platform"] == "x" and state["request"]["target_words"] == 40
    assert len(markdown) <= 280 and not markdown.lstrip().startswith("#") and "## " not in markdown


async def test_an_email_ships_with_its_subject_preview_and_call_to_action(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "content", "content_type": "email", "confidence": 90, "reason": "x"}
    state = await run(graph_fakes, "Write an email to customers about passkeys replacing passwords")
    parts = draft_text.email_parts(state["result"]["markdown"])
    assert parts["subject"] and parts["preview"] and state["result"]["title"] == parts["subject"]
    assert state["request"]["images"] is False
