"""The critique fails closed: hard gates beat the judge, the judge sees what it needs, and
revisions are told exactly what failed without being fed a broken draft."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from devtools.fakes.drafts import blog_post
from devtools.fakes.writer import GraphFakes
from graph.builder import build_graph
from graph.configuration import GraphSettings
from graph.context import DraftloopContext
from graph.model_calls import sentences_only
from graph.nodes.finalize import with_sources
from graph.prompts import REVISION_FRESH

REQUEST = "Write a 300-word blog post about async Python for backend developers"
SOURCES = [{"url": "https://a.example/one", "title": "One"}, {"url": "https://b.example/two", "title": "Two [draft]"},
           {"url": "https://c.example/three", "title": "Three"}]


async def run(fakes: GraphFakes, settings: GraphSettings | None = None, text: str = REQUEST) -> dict[str, Any]:
    graph = build_graph(InMemorySaver())
    deps = fakes.dependencies(settings)
    try:
        return await graph.ainvoke({"messages": [HumanMessage(text)]},
                                   {"configurable": {"thread_id": str(uuid.uuid4())}},
                                   context=DraftloopContext(deps=deps))
    finally:
        await deps.models.aclose()


def judge_requests(fakes: GraphFakes) -> list[dict[str, Any]]:
    return [r for r in fakes.ollama.chat_requests if (r.get("format") or {}).get("title") == "CritiqueVerdict"]


async def test_placeholders_fail_the_attempt_even_when_the_judge_gives_top_marks(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [100]
    graph_fakes.writer.draft_override = blog_post("async Python", 300, [], [1]).replace(
        "This piece explains", "[Your Name] explains")
    state = await run(graph_fakes, GraphSettings(max_revisions=1))
    assert [a["passed"] for a in state["attempts"]] == [False, False]
    assert state["attempts"][0]["checks"]["placeholders"]["ok"] is False
    assert "[Your Name]" in state["attempts"][0]["issues"][0]
    # A broken text is not sent to the judge at all.
    assert "score" not in graph_fakes.writer.calls
    assert state["result"]["passed"] is False


async def test_an_invented_url_fails_the_citations_gate(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [95]
    graph_fakes.writer.draft_override = blog_post("async Python", 300, [], [1]).replace(
        "## How it works", "See https://made-up.example/async-guide for more.\n\n## How it works")
    state = await run(graph_fakes, GraphSettings(max_revisions=0))
    check = state["attempts"][0]["checks"]["citations"]
    assert check["ok"] is False and check["invented_urls"] == ["https://made-up.example/async-guide"]
    assert state["result"]["passed"] is False
    assert graph_fakes.writer.calls.count("score") == 1  # a wrong link is a fixable fault: still judged


async def test_one_dimension_at_the_floor_fails_a_high_average(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [95]
    graph_fakes.writer.dimensions = {"accuracy": 2}
    state = await run(graph_fakes, GraphSettings(max_revisions=0, research_enabled=False))
    attempt = state["attempts"][0]
    assert attempt["score"] >= 70 and attempt["passed"] is False
    assert attempt["checks"]["rubric_floor"]["ok"] is False


async def test_passed_means_score_at_threshold_and_every_gate_green(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [85]
    state = await run(graph_fakes)
    attempt = state["attempts"][0]
    assert attempt["passed"] is True and attempt["score"] >= 70
    assert all(check["ok"] for check in attempt["checks"].values())


async def test_the_judge_sees_request_tone_style_sources_rubric_and_date(graph_fakes: GraphFakes) -> None:
    await run(graph_fakes, text=REQUEST + ", casual tone, narrative style")
    request = judge_requests(graph_fakes)[0]
    system, human = request["messages"][0]["content"], request["messages"][-1]["content"]
    assert "Today is 20" in system and "reasoning first" in system
    assert "Tone: casual. Style: narrative." in human
    assert "[1] Async IO in Python: A Complete Walkthrough" in human and "https://realpython.com" in human
    assert "accuracy:\n  1 = " in human and "5 = " in human
    # Reasoning is the schema's first field: a constrained model writes it before any score.
    assert list(request["format"]["properties"])[0] == "reasoning"


async def test_a_degenerate_first_draft_is_never_shown_to_the_writer_again(graph_fakes: GraphFakes) -> None:
    loop = "# Async Python\n\n" + " ".join(["Async Python is great for backend developers today."] * 40)
    graph_fakes.writer.drafts = [loop]
    graph_fakes.writer.scores = [85]
    state = await run(graph_fakes)
    first, second = graph_fakes.writer.prompts[:2]
    assert state["attempts"][0]["checks"]["repetition"]["ok"] is False
    assert "Async Python is great for backend developers today." not in second
    assert REVISION_FRESH.strip() in second and "It repeats itself" in second
    assert state["result"]["passed"] is True


async def test_at_the_cap_a_gate_clean_attempt_ships_before_a_higher_scored_broken_one(
        graph_fakes: GraphFakes) -> None:
    clean = blog_post("async Python", 300, [], [1])
    broken = clean.replace("This piece explains", "TODO explains")
    graph_fakes.writer.drafts = [clean, broken]
    graph_fakes.writer.scores = [60, 95]
    state = await run(graph_fakes, GraphSettings(max_revisions=1))
    assert state["result"]["passed"] is False
    assert state["result"]["attempt"] == 1 and "TODO" not in state["result"]["markdown"]


async def test_finalize_lists_only_the_cited_sources_under_their_numbers(graph_fakes: GraphFakes) -> None:
    state = await run(graph_fakes)
    result = state["result"]
    cited = [s for s in result["sources"] if s["cited"]]
    assert cited and [s["n"] for s in result["sources"]] == list(range(1, len(result["sources"]) + 1))
    section = result["markdown"].split("## Sources", 1)[1]
    for source in result["sources"]:
        assert (source["url"] in section) == source["cited"]


def test_a_sources_list_the_writer_added_is_replaced_by_the_true_one() -> None:
    text = "# T\n\nClaim one [2]. Claim three [3].\n\n## Sources\n\n- https://invented.example/x\n"
    shipped, cited = with_sources(text, "blog_post", SOURCES)
    assert cited == [2, 3]
    assert "invented.example" not in shipped
    assert shipped.endswith("## Sources\n\n- [2] [Two \\[draft\\]](https://b.example/two)\n"
                            "- [3] [Three](https://c.example/three)\n")
    # Types that cite by link carry no list, but still say which sources they used.
    post, linked = with_sources("Read this: https://a.example/one #tag", "social_post", SOURCES)
    assert "## Sources" not in post and linked == [1]


def test_judge_fragments_and_repeats_are_dropped_from_revision_notes() -> None:
    items = ["string", "Issue 1", "fake text", "The second section repeats the intro.",
             "The second section repeats the intro.", "!!!", "Cite the benchmark for the 3x claim."]
    assert sentences_only(items) == ["The second section repeats the intro.", "Cite the benchmark for the 3x claim."]
