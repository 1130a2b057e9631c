"""Research planning: the searches the model plans for a request, the gaps it sees in what they
found, the searches that fill a critique's gaps, and the deterministic queries that stand in
whenever the model's answer is junk or the model fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from graph import draft_text
from graph.context import Dependencies, active_model
from graph.gates.on_topic import topic_coverage
from graph.model_calls import invoke_structured
from graph.prompts import (
    RESEARCH_GAPS_SYSTEM,
    RESEARCH_GAPS_TEMPLATE,
    RESEARCH_PLAN_SYSTEM,
    RESEARCH_PLAN_TEMPLATE,
    REVISION_RESEARCH_SYSTEM,
    REVISION_RESEARCH_TEMPLATE,
)
from graph.sources import numbered
from graph.state import UsageRecord
from tools.errors import summarise

MIN_QUERIES = 3
MAX_QUERIES = 5
MAX_GAPS = 2
MAX_REVISION_QUERIES = 3
QUERY_CHARS = 100
GAP_CHARS = 160
# What a warning quotes of a failed planning call's error.
PROBLEM_DETAIL_CHARS = 200
# A topic longer than this makes a poor search query; it is cut at a word.
TOPIC_QUERY_CHARS = 80

SchemaT = TypeVar("SchemaT", bound=BaseModel)
# Length bounds matter: llama.cpp turns them into grammar, which stops a small model from
# looping inside a string or a list until its token budget runs out.
Query = Annotated[str, Field(min_length=2, max_length=QUERY_CHARS)]
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_LETTER = re.compile(r"[^\W\d_]")


class SearchPlan(BaseModel):
    queries: list[Query] = Field(min_length=1, max_length=MAX_QUERIES)


class Gap(BaseModel):
    gap: str = Field(min_length=2, max_length=GAP_CHARS)
    query: Query


class ResearchGaps(BaseModel):
    gaps: list[Gap] = Field(default_factory=list, max_length=MAX_GAPS)


class RevisionSearch(BaseModel):
    queries: list[Query] = Field(min_length=1, max_length=MAX_REVISION_QUERIES)


def clip_words(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    return head.rsplit(" ", 1)[0] if " " in head else head


def clean_query(text: str) -> str:
    """A query as a search box wants it: one line, no list marker, no wrapping quotes."""
    text = _LIST_MARKER.sub("", " ".join(str(text).split()))
    return clip_words(text.strip(" \"'“”.,;:-"), QUERY_CHARS)


def _usable(query: str) -> bool:
    return len(_LETTER.findall(query)) >= 3


def distinct(queries: list[str], already: list[str] | None = None) -> list[str]:
    """Cleaned, usable queries, without repeats (of each other or of `already`), in order."""
    seen = {q.lower() for q in already or []}
    kept: list[str] = []
    for query in (clean_query(q) for q in queries):
        if _usable(query) and query.lower() not in seen:
            seen.add(query.lower())
            kept.append(query)
    return kept


def on_topic(query: str, request: Mapping[str, Any]) -> bool:
    """Shares a term with the topic, or names a keyword: a query about something else is junk."""
    topic = str(request.get("topic") or request.get("text") or "")
    if topic_coverage(query, topic)[0] > 0:
        return True
    return any(draft_text.has_phrase(k, query) for k in request.get("keywords") or [] if str(k).strip())


def fallback_queries(request: Mapping[str, Any], today: date) -> list[str]:
    """Queries built from the request alone, for when the model's plan is unusable."""
    topic = clip_words(str(request.get("topic") or request.get("text") or ""), TOPIC_QUERY_CHARS)
    if not _usable(topic):
        return []
    keywords = [str(k) for k in request.get("keywords") or [] if str(k).lower() not in topic.lower()][:2]
    angle = "research data" if request.get("content_type") == "research_brief" else "examples"
    candidates = [topic]
    if keywords:
        candidates.append(f"{topic} {' '.join(keywords)}")
    candidates += [f"{topic} {today.year}", f"{topic} {angle}"]
    audience = str(request.get("audience") or "")
    if audience and audience != "a general audience":
        candidates.append(f"{topic} for {audience}")
    return distinct(candidates)[:MAX_QUERIES]


@dataclass
class Planned:
    queries: list[str]
    usage: list[UsageRecord]
    problem: str | None = None  # why the model's plan was not used as it came


@dataclass
class FoundGaps:
    gaps: list[Gap]
    usage: list[UsageRecord]
    problem: str | None = None


@dataclass
class Planner:
    """The model calls of the research step, each bounded and each with a fallback."""

    deps: Dependencies
    turn: int
    today: date

    async def _ask(self, schema: type[SchemaT], system: str, human: str) -> tuple[SchemaT | None, list[UsageRecord],
                                                                                     str | None]:
        messages = [SystemMessage(system.format(today=self.today.isoformat())), HumanMessage(human)]
        try:
            chat, provider, model = await active_model(self.deps)
            parsed, usage, problem = await invoke_structured(chat, schema, messages, node="research",
                                                             provider=provider, model=model,
                                                             settings=self.deps.settings, turn=self.turn)
        except Exception as exc:  # noqa: BLE001 - planning is an aid: a model that fails here must not fail the run
            # Redacted before it is cut: a key cut in half would no longer match.
            detail = summarise(f"{type(exc).__name__}: {exc}", self.deps.secrets, PROBLEM_DETAIL_CHARS)
            return None, [], f"research: the model could not plan ({detail})"
        return parsed, [usage], problem

    async def plan(self, request: Mapping[str, Any]) -> Planned:
        """3-5 queries for the request; the fallback queries top up or replace a poor plan."""
        human = RESEARCH_PLAN_TEMPLATE.format(
            topic=request.get("topic") or "",
            content_type=str(request.get("content_type") or "blog_post").replace("_", " "),
            audience=request.get("audience") or "a general audience",
            keywords=", ".join(request.get("keywords") or []) or "none given",
            text=clip_words(str(request.get("text") or ""), 500),
        )
        parsed, usage, problem = await self._ask(SearchPlan, RESEARCH_PLAN_SYSTEM, human)
        fallback = fallback_queries(request, self.today)
        planned = [q for q in distinct(parsed.queries) if on_topic(q, request)] if parsed else []
        if len(planned) < 2:
            reason = problem or "research: the model's query plan was off topic or empty"
            return Planned(fallback, usage, f"{reason}; searched with queries built from the topic")
        topped = planned + distinct(fallback, planned)[: max(0, MIN_QUERIES - len(planned))]
        return Planned(topped[:MAX_QUERIES], usage)

    async def gaps(self, request: Mapping[str, Any], queries: list[str],
                   found: Sequence[Mapping[str, Any]]) -> FoundGaps:
        """At most MAX_GAPS gaps in what the first round found, each with a new query."""
        human = RESEARCH_GAPS_TEMPLATE.format(
            topic=request.get("topic") or "",
            content_type=str(request.get("content_type") or "blog_post").replace("_", " "),
            audience=request.get("audience") or "a general audience",
            queries="; ".join(queries),
            results=numbered(found, evidence=False),
        )
        parsed, usage, problem = await self._ask(ResearchGaps, RESEARCH_GAPS_SYSTEM, human)
        if parsed is None:
            return FoundGaps([], usage, f"{problem}; skipped the follow-up searches" if problem else None)
        kept: list[Gap] = []
        for gap in parsed.gaps:
            query = distinct([gap.query], queries + [g.query for g in kept])
            if query:
                kept.append(Gap(gap=clip_words(gap.gap, GAP_CHARS), query=query[0]))
        return FoundGaps(kept[:MAX_GAPS], usage)

    async def for_gaps(self, request: Mapping[str, Any], gaps: list[str], already: list[str]) -> Planned:
        """1-3 queries for a critique's gaps; the gaps themselves are the fallback queries."""
        human = REVISION_RESEARCH_TEMPLATE.format(
            topic=request.get("topic") or "",
            audience=request.get("audience") or "a general audience",
            gaps="\n".join(f"- {g}" for g in gaps),
        )
        parsed, usage, problem = await self._ask(RevisionSearch, REVISION_RESEARCH_SYSTEM, human)
        planned = distinct(parsed.queries, already) if parsed else []
        if planned:
            return Planned(planned[:MAX_REVISION_QUERIES], usage)
        fallback = distinct(gaps, already)[:MAX_REVISION_QUERIES]
        reason = problem or "research: the model planned no new query for the critique's gaps"
        return Planned(fallback, usage, f"{reason}; searched for the gaps as named")
