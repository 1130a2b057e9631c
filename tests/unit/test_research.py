"""The research step against the fake Ollama, Serper, Pexels and a page host over loopback:
planned queries, fallbacks, the follow-up round, page evidence, dedupe and order, revision
research and the progress events."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from devtools.fakes.ollama import OllamaReply
from devtools.fakes.pages import FakePages
from devtools.fakes.scripting import hang
from devtools.fakes.writer import GraphFakes
from graph.builder import build_graph
from graph.configuration import GraphSettings
from graph.context import DraftloopContext
from graph.nodes.research import MAX_REVISION_ROUNDS, research, wants_revision_research
from graph.research_plan import fallback_queries
from graph.sources import EVIDENCE_CHARS
from tools.pages import PageReader
from tools.serper import SerperClient

REQUEST = "Write a 300-word blog post about async Python for backend developers, with a cover photo"
COMMERCIAL = "Write a blog post about the best budget mechanical keyboards to buy"
PLAN = ["python asyncio event loop", "asyncio backend performance", "async python common mistakes"]
FILLER = [f"Our company was founded in {year} and ships shoes to customers worldwide." for year in range(1990, 1996)]
RELEVANT = "The asyncio event loop in Python runs every coroutine on one thread and switches at each await."


async def run(fakes: GraphFakes, text: str = REQUEST, settings: GraphSettings | None = None,
              **clients: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The final state and the custom stream events of one run."""
    graph = build_graph(InMemorySaver())
    deps = fakes.dependencies(settings, **clients)
    events: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    try:
        async for mode, chunk in graph.astream({"messages": [HumanMessage(text)]},
                                               {"configurable": {"thread_id": str(uuid.uuid4())}},
                                               context=DraftloopContext(deps=deps), stream_mode=["custom", "values"]):
            if mode == "custom":
                events.append(chunk)
            else:
                state = chunk
    finally:
        await deps.models.aclose()
    return state, events


def searched(state: dict[str, Any], kind: str, round_: int | None = None) -> list[str]:
    return [q["query"] for q in state["research"]["queries"]
            if q["kind"] == kind and (round_ is None or q["round"] == round_)]


def result(url: str, title: str, snippet: str = "A result about async Python.") -> dict[str, Any]:
    return {"title": title, "link": url, "snippet": snippet}


def page_reader(fakes: GraphFakes) -> PageReader:
    return PageReader(fakes.http, timeout=2, allow_insecure_hosts={"127.0.0.1"})


# planning -----------------------------------------------------------------------------------

async def test_planned_queries_run_as_web_searches_and_the_first_two_also_as_news(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = PLAN
    state, _ = await run(graph_fakes)
    assert sorted(graph_fakes.serper.queries("/search")) == sorted(PLAN)
    assert sorted(graph_fakes.serper.queries("/news")) == sorted(PLAN[:2])
    assert graph_fakes.serper.queries("/shopping") == []
    assert searched(state, "web", 1) == PLAN and searched(state, "news", 1) == PLAN[:2]
    assert searched(state, "images") == [state["request"]["topic"]]
    assert all(q["error"] is None and q["results"] > 0 and q["revision"] == 0 for q in state["research"]["queries"])
    plan_prompt = graph_fakes.writer.research_prompts[0]
    assert datetime.now(UTC).date().isoformat() in plan_prompt
    assert "Topic: async Python" in plan_prompt and "backend developers" in plan_prompt
    assert state["result"]["passed"] is True


async def test_junk_plan_falls_back_to_queries_built_from_the_topic(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.junk_plan = True
    state, _ = await run(graph_fakes)
    expected = fallback_queries(state["request"], datetime.now(UTC).date())
    assert 3 <= len(expected) <= 5 and expected[0] == "async Python"
    assert searched(state, "web", 1) == expected
    assert sorted(graph_fakes.serper.queries("/search")) == sorted(expected)
    assert any("built from the topic" in w for w in state["warnings"])
    assert state["result"]["passed"] is True


async def test_off_topic_plan_falls_back_to_queries_built_from_the_topic(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = ["cheap flights to rome", "weather tomorrow", "football scores"]
    state, _ = await run(graph_fakes)
    assert searched(state, "web", 1) == fallback_queries(state["request"], datetime.now(UTC).date())
    assert any("off topic" in w for w in state["warnings"])


async def test_a_short_plan_is_topped_up_to_three_queries(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = ["1. python asyncio event loop", '"asyncio backend performance"']
    state, _ = await run(graph_fakes)
    planned = searched(state, "web", 1)
    assert planned[:2] == ["python asyncio event loop", "asyncio backend performance"]
    assert len(planned) == 3 and planned[2] in fallback_queries(state["request"], datetime.now(UTC).date())


async def test_a_failing_model_during_planning_falls_back_without_failing_the_run(graph_fakes: GraphFakes) -> None:
    writer = graph_fakes.writer

    def respond(body: dict[str, Any]) -> OllamaReply:
        fmt = body.get("format")
        if isinstance(fmt, dict) and fmt.get("title") in ("SearchPlan", "ResearchGaps"):
            writer.calls.append("failed research call")
            return OllamaReply(fault="http_500")
        return writer(body)

    graph_fakes.ollama.responder = respond
    state, _ = await run(graph_fakes)
    assert searched(state, "web", 1) == fallback_queries(state["request"], datetime.now(UTC).date())
    assert any("could not plan" in w for w in state["warnings"])
    assert state["research"]["gaps"] == [] and searched(state, "web", 2) == []
    assert state["result"]["passed"] is True


async def test_unconfigured_serper_skips_planning_too(graph_fakes: GraphFakes) -> None:
    unconfigured = SerperClient(graph_fakes.http, None, base_url=graph_fakes.serper.base_url)
    state, _ = await run(graph_fakes, serper=unconfigured)
    assert "plan" not in graph_fakes.writer.calls and "gaps" not in graph_fakes.writer.calls
    assert searched(state, "web") == [] and searched(state, "images")
    assert any("SERPER_API_KEY" in w for w in state["warnings"])


# the follow-up round --------------------------------------------------------------------------

async def test_follow_up_round_searches_each_named_gap_once(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = PLAN
    graph_fakes.writer.gaps = [{"gap": "No benchmark numbers", "query": "uvloop asyncio benchmark"},
                               {"gap": "Nothing on Python 3.14", "query": "python 3.14 asyncio changes"}]
    state, _ = await run(graph_fakes)
    assert graph_fakes.writer.calls.count("gaps") == 1
    assert searched(state, "web", 2) == ["uvloop asyncio benchmark", "python 3.14 asyncio changes"]
    assert Counter(graph_fakes.serper.queries("/search")) == Counter(PLAN + searched(state, "web", 2))
    assert [g["gap"] for g in state["research"]["gaps"]] == ["No benchmark numbers", "Nothing on Python 3.14"]
    gap_prompt = graph_fakes.writer.research_prompts[1]
    assert "[1] Async IO in Python: A Complete Walkthrough" in gap_prompt


async def test_more_gaps_than_the_bound_is_junk_and_no_follow_up_runs(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.gaps = [{"gap": f"gap {n}", "query": f"async python gap {n}"} for n in range(3)]
    state, _ = await run(graph_fakes)
    assert searched(state, "web", 2) == [] and state["research"]["gaps"] == []
    assert any("skipped the follow-up searches" in w for w in state["warnings"])


async def test_a_gap_query_that_repeats_a_planned_query_is_not_run_again(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = PLAN
    graph_fakes.writer.gaps = [{"gap": "Repeat", "query": PLAN[0].upper()}]
    state, _ = await run(graph_fakes)
    assert searched(state, "web", 2) == []
    assert Counter(graph_fakes.serper.queries("/search")) == Counter(PLAN)


async def test_no_follow_up_when_the_first_round_found_nothing(graph_fakes: GraphFakes) -> None:
    graph_fakes.serper.web, graph_fakes.serper.news = [], []
    state, _ = await run(graph_fakes)
    assert "gaps" not in graph_fakes.writer.calls
    assert state["research"]["sources"] == []


# shopping -----------------------------------------------------------------------------------

async def test_shopping_search_runs_only_for_a_commercial_request(graph_fakes: GraphFakes) -> None:
    await run(graph_fakes)
    assert graph_fakes.serper.queries("/shopping") == []

    graph_fakes.serper.server.requests.clear()
    graph_fakes.writer.intent = {"kind": "content", "content_type": "blog_post", "confidence": 90,
                                 "topic": "best budget mechanical keyboards"}
    graph_fakes.writer.plan = ["budget mechanical keyboards 2026", "mechanical keyboard switches", "keyboard reviews"]
    state, _ = await run(graph_fakes, COMMERCIAL)
    assert graph_fakes.serper.queries("/shopping") == ["budget mechanical keyboards 2026"]
    assert [s["kind"] for s in state["research"]["sources"]][-2:] == ["shopping", "shopping"]


# sources: dedupe, order, cap ------------------------------------------------------------------

async def test_results_are_deduplicated_by_normalised_url_web_before_news(graph_fakes: GraphFakes) -> None:
    graph_fakes.serper.web = [result("https://www.example.com/guide/", "Guide"),
                              result("https://docs.example.org/asyncio", "Docs"),
                              result("http://example.com/guide#intro", "Guide again")]
    graph_fakes.serper.news = [result("https://example.com/guide", "Guide in the news"),
                               result("https://news.example.net/loop", "News")]
    state, _ = await run(graph_fakes)
    assert [(s["url"], s["kind"]) for s in state["research"]["sources"]] == [
        ("https://www.example.com/guide/", "web"), ("https://docs.example.org/asyncio", "web"),
        ("https://news.example.net/loop", "news")]


async def test_sources_interleave_queries_by_rank_keep_news_slots_and_stop_at_ten(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.plan = PLAN
    serper = graph_fakes.serper
    for q, query in enumerate(PLAN, 1):
        serper.per_query[("search", query)] = [result(f"https://web{q}.example.com/{r}", f"w{q}.{r}") for r in range(1, 9)]
    for q, query in enumerate(PLAN[:2], 1):
        serper.per_query[("news", query)] = [result(f"https://news{q}.example.com/{r}", f"n{q}.{r}") for r in range(1, 4)]
    state, _ = await run(graph_fakes)
    titles = [s["title"] for s in state["research"]["sources"]]
    assert titles == ["w1.1", "w2.1", "w3.1", "w1.2", "w2.2", "w3.2", "w1.3", "w2.3", "n1.1", "n2.1"]


# page evidence ------------------------------------------------------------------------------

async def test_top_three_sources_carry_an_excerpt_of_their_page(graph_fakes: GraphFakes, fake_pages: FakePages) -> None:
    graph_fakes.writer.plan = PLAN
    urls = [fake_pages.article(f"/p{n}", f"Article {n} on async Python", FILLER[:3] + [RELEVANT] + FILLER[3:])
            for n in range(1, 5)]
    graph_fakes.serper.web = [result(url, f"Article {n}") for n, url in enumerate(urls, 1)]
    graph_fakes.serper.news = []
    state, _ = await run(graph_fakes, pages=page_reader(graph_fakes))
    sources = state["research"]["sources"]
    assert [s["url"] for s in sources] == urls
    for source in sources[:3]:
        assert RELEVANT in source["evidence"] and len(source["evidence"]) <= EVIDENCE_CHARS
        assert "shoes" not in source["evidence"]
    assert "evidence" not in sources[3]
    assert sorted(fake_pages.paths) == ["/p1", "/p2", "/p3"]


async def test_a_page_that_cannot_be_read_is_a_warning(graph_fakes: GraphFakes, fake_pages: FakePages) -> None:
    good = fake_pages.article("/good", "Async Python in practice", [RELEVANT])
    graph_fakes.serper.web = [result(fake_pages.url("/gone"), "Gone"), result(good, "Good"),
                              result("https://169.254.169.254/latest/meta-data/", "Metadata")]
    graph_fakes.serper.news = []
    state, _ = await run(graph_fakes, pages=page_reader(graph_fakes))
    gone, kept, metadata = state["research"]["sources"]
    assert "evidence" not in gone and "evidence" not in metadata and RELEVANT in kept["evidence"]
    warnings = " ".join(state["warnings"])
    assert "/gone was not read" in warnings and "non-public address" in warnings
    assert state["result"]["passed"] is True


async def test_page_reads_stop_at_the_research_timeout(graph_fakes: GraphFakes, fake_pages: FakePages) -> None:
    graph_fakes.serper.web = [result(fake_pages.article("/slow", "Async Python", [RELEVANT]), "Slow")]
    graph_fakes.serper.news = []
    fake_pages.faults.push(hang())
    slow_reader = PageReader(graph_fakes.http, timeout=30, max_retries=0, allow_insecure_hosts={"127.0.0.1"})
    state, _ = await run(graph_fakes, settings=GraphSettings(research_timeout=0.5), pages=slow_reader)
    assert "evidence" not in state["research"]["sources"][0]
    assert any("/slow was not read within 0.5s" in w for w in state["warnings"])
    assert state["result"]["passed"] is True


async def test_page_reading_can_be_turned_off(graph_fakes: GraphFakes, fake_pages: FakePages) -> None:
    graph_fakes.serper.web = [result(fake_pages.article("/p", "Async Python", [RELEVANT]), "Async Python")]
    state, _ = await run(graph_fakes, settings=GraphSettings(research_fetch_pages=False),
                         pages=page_reader(graph_fakes))
    assert fake_pages.paths == []
    assert all("evidence" not in s for s in state["research"]["sources"])


# progress events ----------------------------------------------------------------------------

async def test_every_search_streams_a_research_query_event(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.gaps = [{"gap": "No benchmark numbers", "query": "uvloop asyncio benchmark"}]
    state, events = await run(graph_fakes)
    assert {e["type"] for e in events} == {"research_query"}
    shown = Counter((e["round"], e["kind"], e["query"], e["results"], e["error"]) for e in events)
    recorded = Counter((q["round"], q["kind"], q["query"], q["results"], q["error"]) for q in state["research"]["queries"])
    assert shown == recorded and len(events) == 3 + 2 + 1 + 1  # web, news, images, follow-up


# revision research --------------------------------------------------------------------------

def failed_critique(*gaps: str) -> dict[str, Any]:
    return {"passed": False, "score": 55, "issues": ["claims lack support"], "research_gaps": list(gaps)}


async def test_revision_research_appends_new_sources_without_renumbering(graph_fakes: GraphFakes) -> None:
    first, _ = await run(graph_fakes)
    cited = first["research"]["sources"]
    graph_fakes.serper.per_query[("search", "uvloop asyncio benchmark")] = [
        result("https://bench.example.com/uvloop", "uvloop benchmark"),
        result(str(cited[0]["url"]).replace("https://", "https://www."), "The first source again"),
        result("https://speed.example.org/asyncio", "asyncio speed")]
    graph_fakes.writer.revision_queries = ["uvloop asyncio benchmark"]
    state = {**first, "critique": failed_critique("No benchmark numbers for uvloop")}
    assert wants_revision_research(state)

    deps = graph_fakes.dependencies()
    events: list[Any] = []
    update = await research(state, Runtime(context=DraftloopContext(deps=deps), stream_writer=events.append))
    await deps.models.aclose()

    sources = update["research"]["sources"]
    assert sources[:len(cited)] == cited
    assert [s["url"] for s in sources[len(cited):]] == ["https://bench.example.com/uvloop",
                                                        "https://speed.example.org/asyncio"]
    assert update["research"]["revisions"] == 1
    assert update["research"]["queries"][:-1] == first["research"]["queries"]
    assert update["research"]["queries"][-1] == {"round": 1, "kind": "web", "query": "uvloop asyncio benchmark",
                                                 "results": 3, "error": None, "revision": 1}
    assert update["research"]["gaps"][-1] == {"gap": "No benchmark numbers for uvloop", "revision": 1}
    assert events == [{"type": "research_query", **update["research"]["queries"][-1]}]
    assert [u["node"] for u in update["usage"]] == ["research"]
    assert update["research"]["images"] == first["research"]["images"]


async def test_a_critique_short_on_accuracy_routes_through_revision_research_once(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [95]
    graph_fakes.writer.dimensions = {"accuracy": 2}  # at the rubric floor: the facts fall short
    graph_fakes.writer.revision_queries = ["asyncio benchmark numbers"]
    graph_fakes.serper.per_query[("search", "asyncio benchmark numbers")] = [
        result("https://bench.example.com/asyncio", "asyncio benchmark")]
    state, events = await run(graph_fakes, settings=GraphSettings(max_revisions=2))
    calls = graph_fakes.writer.calls
    assert calls[:6] == ["intent", "plan", "gaps", "draft", "score", "revision_plan"]
    assert calls.count("revision_plan") == 1 and calls.count("draft") == 3
    research_state = state["research"]
    assert research_state["revisions"] == 1
    assert [s["url"] for s in research_state["sources"]][-1] == "https://bench.example.com/asyncio"
    assert [q["query"] for q in research_state["queries"] if q["revision"] == 1] == ["asyncio benchmark numbers"]
    assert any(e["revision"] == 1 for e in events)


async def test_revision_research_searches_the_gaps_as_named_when_the_plan_is_junk(graph_fakes: GraphFakes) -> None:
    first, _ = await run(graph_fakes)
    state = {**first, "critique": failed_critique("uvloop benchmark numbers", "python 3.14 asyncio changes")}
    deps = graph_fakes.dependencies()
    update = await research(state, Runtime(context=DraftloopContext(deps=deps)))
    await deps.models.aclose()
    assert [q["query"] for q in update["research"]["queries"] if q["revision"] == 1] == [
        "uvloop benchmark numbers", "python 3.14 asyncio changes"]
    assert any("searched for the gaps as named" in w for w in update["warnings"])


async def test_revision_research_is_bounded_per_turn(graph_fakes: GraphFakes) -> None:
    first, _ = await run(graph_fakes)
    state: dict[str, Any] = {**first, "critique": failed_critique("uvloop benchmark numbers")}
    deps = graph_fakes.dependencies()
    for round_ in range(1, MAX_REVISION_ROUNDS + 1):
        graph_fakes.writer.revision_queries = [f"uvloop benchmark round {round_}"]
        update = await research(state, Runtime(context=DraftloopContext(deps=deps)))
        state = {**state, "research": update["research"]}
        assert state["research"]["revisions"] == round_
    assert not wants_revision_research(state)
    searches_before = len(graph_fakes.serper.requests)
    update = await research(state, Runtime(context=DraftloopContext(deps=deps)))
    await deps.models.aclose()
    assert "research" not in update and "sources stay as they were" in update["warnings"][0]
    assert len(graph_fakes.serper.requests) == searches_before


@pytest.mark.parametrize(("change", "wanted"), [
    ({}, True),
    ({"critique": {"passed": True, "research_gaps": ["x gap"]}}, False),
    ({"critique": failed_critique()}, False),
    ({"critique": {**failed_critique("x gap"), "exhausted": True}}, False),
    ({"request": {"research": False}}, False),
    ({"research": {"revisions": MAX_REVISION_ROUNDS, "turn": 1}}, False),
    ({"research": {"revisions": MAX_REVISION_ROUNDS, "turn": 0}}, True),  # last turn's rounds do not count
])
def test_wants_revision_research_only_for_a_failed_critique_with_gaps_within_the_bound(
        change: dict[str, Any], wanted: bool) -> None:
    state = {"turn": 1, "request": {"research": True}, "research": {"revisions": 0, "turn": 1},
             "critique": failed_critique("x gap"), **change}
    assert wants_revision_research(state) is wanted  # type: ignore[arg-type]
