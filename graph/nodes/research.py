"""research: planned web, news (and shopping for commercial requests) searches, one follow-up
round on the gaps they leave, page evidence for the top sources, and images, as numbered sources.

Called again after a critique that found the sources short (`critique["research_gaps"]`), it
runs one bounded round for those gaps and appends what it finds after the sources the draft
already cites, so every `[n]` keeps pointing at the same source.

A provider that fails or is not configured, a model whose plan is junk, and a page that cannot
be read all become warnings in state, never a failed run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import StreamWriter

from graph import draft_text
from graph.context import Dependencies, DraftloopContext, dependencies
from graph.intent_rules import is_commercial
from graph.research_plan import MAX_GAPS, Planner, clip_words, distinct
from graph.sources import excerpt
from graph.state import Image, QueryRecord, ResearchGap, Source, State, UsageRecord
from storage.storable import storable
from tools.errors import NotConfiguredError, ToolError
from tools.pages import PageSource
from tools.pexels import Photo
from tools.serper import KEY_ENV_VAR, SearchResult

# The bounds of one research step (docs/content.md's "Research" section explains them).
NEWS_QUERIES = 2  # the first planned queries also run as news searches
MAX_SOURCES = 10  # handed to the writer, numbered in this order
# Places kept for news and for shopping results when there are any: five web queries must not
# crowd them out of the sources.
NEWS_SLOTS = 2
SHOPPING_SLOTS = 2
PAGES = 3  # top sources whose pages are read for evidence
IMAGE_RESULTS = 3
REVISION_SOURCES = 4  # new sources one revision's research may append
MAX_REVISION_ROUNDS = 1  # research rounds for revisions, per turn: one, then the writer works with what it has
RESEARCH_QUERY_EVENT = "research_query"
_KINDS = ("web", "news", "shopping")


@dataclass
class _Search:
    round: int
    kind: str
    query: str
    revision: int = 0
    results: list[Any] = field(default_factory=list)
    error: str | None = None

    def record(self) -> QueryRecord:
        return QueryRecord(round=self.round, kind=self.kind, query=self.query, results=len(self.results),
                           error=self.error, revision=self.revision)


@dataclass
class _Searcher:
    """Runs searches concurrently, each within the deadline, and reports each as it finishes."""

    deps: Dependencies
    writer: StreamWriter
    warnings: list[str]
    deadline: float

    def _call(self, search: _Search) -> Awaitable[list[Any]]:
        limit = self.deps.settings.search_results
        if search.kind == "images":
            return self.deps.pexels.search_images(search.query, orientation="landscape", limit=IMAGE_RESULTS)
        if search.kind == "news":
            return self.deps.serper.search_news(search.query, limit)
        if search.kind == "shopping":
            return self.deps.serper.search_shopping(search.query, limit)
        return self.deps.serper.search_web(search.query, limit)

    async def _one(self, search: _Search) -> None:
        label = f"{'image' if search.kind == 'images' else search.kind} search {search.query!r}"
        # Each client retries within its own bounds; the deadline caps every search so a slow
        # provider delays the draft by seconds, not minutes.
        try:
            search.results = await asyncio.wait_for(self._call(search), self.deadline)
        except TimeoutError:
            search.error = f"gave no answer within {self.deadline:g}s"
        except NotConfiguredError as exc:
            search.error = f"skipped: {exc}"
        except ToolError as exc:
            search.error = f"failed: {exc}"
        if search.error:
            self.warnings.append(f"research: {label} {search.error}")
        self.writer({"type": RESEARCH_QUERY_EVENT, **search.record()})

    async def run(self, searches: list[_Search]) -> None:
        await asyncio.gather(*(self._one(s) for s in searches))


def _source(result: SearchResult) -> Source:
    return Source(
        url=result.url,
        title=result.title,
        snippet=result.snippet,
        kind=result.kind,
        date=result.date,
        source=result.source,
        price=result.price,
    )


def _image(photo: Photo) -> Image:
    return Image(
        id=photo.id,
        url=photo.url,
        src=photo.src.get("large") or photo.src.get("original") or next(iter(photo.src.values()), ""),
        photographer=photo.photographer,
        photographer_url=photo.photographer_url,
        alt=photo.alt,
        width=photo.width,
        height=photo.height,
        credit=photo.credit_markdown,
    )


def _rank_major(searches: list[_Search]) -> Iterator[tuple[SearchResult, str]]:
    """Every search's first result in query order, then every second result...: the top of
    each query reaches the writer before the tail of the first."""
    depth = max((len(s.results) for s in searches), default=0)
    for rank in range(depth):
        for search in searches:
            if rank < len(search.results):
                yield search.results[rank], search.query


def merge(searches: list[_Search], existing: list[Source], cap: int) -> tuple[list[Source], dict[str, str]]:
    """New sources, deduplicated by normalised URL (against `existing` too), web then news then
    shopping, at most `cap`; and the query that found each (by normalised URL)."""
    seen = {draft_text.normalise_url(str(s.get("url") or "")) for s in existing}
    found: dict[str, list[tuple[SearchResult, str]]] = {}
    for kind in _KINDS:
        found[kind] = []
        for result, query in _rank_major([s for s in searches if s.kind == kind]):
            key = draft_text.normalise_url(result.url)
            if result.url and key not in seen:
                seen.add(key)
                found[kind].append((result, query))
    web, news, shopping = found["web"], found["news"], found["shopping"]
    news_n, shopping_n = min(len(news), NEWS_SLOTS), min(len(shopping), SHOPPING_SLOTS)
    web_n = min(len(web), max(0, cap - news_n - shopping_n))
    spare = cap - web_n - news_n - shopping_n
    more_news = min(len(news) - news_n, max(0, spare))
    news_n += more_news
    shopping_n += min(len(shopping) - shopping_n, max(0, spare - more_news))
    chosen = (web[:web_n] + news[:news_n] + shopping[:shopping_n])[:cap]
    return [_source(r) for r, _ in chosen], {draft_text.normalise_url(r.url): q for r, q in chosen}


async def add_evidence(pages: PageSource, chosen: list[Source], query_of: dict[str, str], context: str,
                       deadline: float, warnings: list[str]) -> None:
    """Read the chosen sources' pages concurrently within `deadline` seconds and keep, in each
    source's `evidence`, the excerpt most relevant to the query that found it."""
    tasks = {asyncio.create_task(pages.read(str(s["url"]))): s for s in chosen}
    if not tasks:
        return
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline)
    finally:
        # Also when this node is cancelled: no page read may outlive the step that wanted it.
        for task in tasks:
            task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task, source in tasks.items():
        if task in pending:
            warnings.append(f"research: page {source['url']} was not read within {deadline:g}s")
            continue
        try:
            page = task.result()
        except (ToolError, ValueError) as exc:
            warnings.append(f"research: page {source['url']} was not read: {exc}")
            continue
        evidence = excerpt(page.text, f"{query_of.get(draft_text.normalise_url(str(source['url'])), '')} {context}")
        if evidence:
            source["evidence"] = evidence


def _readable(sources: list[Source]) -> list[Source]:
    # A shop's product page is a price list, not evidence.
    return [s for s in sources if s.get("kind") != "shopping"][:PAGES]


def _context_terms(request: Mapping[str, Any]) -> str:
    return " ".join([str(request.get("topic") or ""), *(str(k) for k in request.get("keywords") or [])])


def critique_gaps(state: State) -> list[str]:
    """The gaps a failed critique of this turn asks research to fill (route_intent clears the
    critique at every turn, so one in state is this turn's)."""
    critique = state.get("critique") or {}
    if critique.get("passed") is not False:
        return []
    gaps = critique.get("research_gaps") or []
    return [clip_words(str(g), 160) for g in gaps if isinstance(g, str) and g.strip()]


def revision_rounds(state: State) -> int:
    research = state.get("research") or {}
    return int(research.get("revisions") or 0) if research.get("turn") == state.get("turn") else 0


def wants_revision_research(state: State) -> bool:
    """For the critique's routing: should the next revision research again before rewriting?

    Yes when this turn's critique failed naming research gaps, the request allows research,
    the loop is not spent and fewer than MAX_REVISION_ROUNDS rounds ran this turn."""
    critique = state.get("critique") or {}
    request = state.get("request") or {}
    if critique.get("exhausted") or not request.get("research", True):
        return False
    return bool(critique_gaps(state)) and revision_rounds(state) < MAX_REVISION_ROUNDS


def _planner(deps: Dependencies, state: State) -> Planner:
    return Planner(deps, int(state.get("turn") or 1), datetime.now(UTC).date())


def _serper_missing() -> str:
    return f"research: web search skipped: {NotConfiguredError('Serper', KEY_ENV_VAR)}"


async def _first_research(state: State, deps: Dependencies, writer: StreamWriter) -> dict[str, Any]:
    request = dict(state.get("request") or {})
    topic = str(request.get("topic") or request.get("text") or "")
    warnings: list[str] = []
    usage: list[UsageRecord] = []
    searcher = _Searcher(deps, writer, warnings, deps.settings.research_timeout)
    images = _Search(1, "images", clip_words(topic, 80)) if request.get("images") and topic.strip() else None
    searches: list[_Search] = []
    gaps: list[ResearchGap] = []

    async def search_and_follow_up() -> None:
        if not request.get("research", True):
            return
        if not deps.serper.configured:
            warnings.append(_serper_missing())
            return
        planner = _planner(deps, state)
        plan = await planner.plan(request)
        usage.extend(plan.usage)
        if plan.problem:
            warnings.append(plan.problem)
        first = [_Search(1, "web", q) for q in plan.queries]
        first += [_Search(1, "news", q) for q in plan.queries[:NEWS_QUERIES]]
        if plan.queries and (is_commercial(topic) or is_commercial(str(request.get("text") or ""))):
            first.append(_Search(1, "shopping", plan.queries[0]))
        searches.extend(first)
        await searcher.run(first)
        found, _ = merge(first, [], MAX_SOURCES)
        if not found:
            return
        found_gaps = await planner.gaps(request, plan.queries, list(found))
        usage.extend(found_gaps.usage)
        if found_gaps.problem:
            warnings.append(found_gaps.problem)
        gaps.extend(ResearchGap(gap=g.gap, query=g.query, revision=0) for g in found_gaps.gaps[:MAX_GAPS])
        second = [_Search(2, "web", g["query"]) for g in gaps]
        searches.extend(second)
        await searcher.run(second)

    await asyncio.gather(search_and_follow_up(), searcher.run([images] if images else []))
    sources, query_of = merge(searches, [], MAX_SOURCES)
    if deps.pages is not None and deps.settings.research_fetch_pages:
        await add_evidence(deps.pages, _readable(sources), query_of, _context_terms(request),
                           deps.settings.research_timeout, warnings)
    records = [s.record() for s in searches] + ([images.record()] if images else [])
    research = {
        "sources": sources,
        "images": [_image(photo) for photo in images.results] if images else [],
        "warnings": warnings,
        "queries": records,
        "gaps": gaps,
        "turn": int(state.get("turn") or 1),
        "revisions": 0,
    }
    update: dict[str, Any] = {"research": research}
    if usage:
        update["usage"] = usage
    if warnings:
        update["warnings"] = warnings
    return update


async def _revision_research(state: State, deps: Dependencies, writer: StreamWriter) -> dict[str, Any]:
    request = dict(state.get("request") or {})
    previous: dict[str, Any] = dict(state.get("research") or {})
    # Copies: the sources in state belong to the checkpoint, and their numbers are cited.
    existing = [Source(**s) for s in previous.get("sources") or []]
    revision = revision_rounds(state) + 1
    warnings: list[str] = []
    usage: list[UsageRecord] = []
    gap_names = critique_gaps(state)
    already = [str(q.get("query") or "") for q in previous.get("queries") or [] if q.get("kind") != "images"]
    searches: list[_Search] = []
    if not deps.serper.configured:
        warnings.append(_serper_missing())
    elif gap_names:
        planner = _planner(deps, state)
        plan = await planner.for_gaps(request, gap_names, already)
        usage.extend(plan.usage)
        if plan.problem:
            warnings.append(plan.problem)
        searches = [_Search(1, "web", q, revision=revision) for q in distinct(plan.queries, already)]
        if not searches:
            warnings.append("research: every query for the critique's gaps had already run; no new search")
        await _Searcher(deps, writer, warnings, deps.settings.research_timeout).run(searches)
    added, query_of = merge(searches, existing, REVISION_SOURCES)
    if added and deps.pages is not None and deps.settings.research_fetch_pages:
        await add_evidence(deps.pages, _readable(added), query_of, _context_terms(request),
                           deps.settings.research_timeout, warnings)
    research = {
        **previous,
        "sources": existing + added,
        "warnings": [*(previous.get("warnings") or []), *warnings],
        "queries": [*(previous.get("queries") or []), *(s.record() for s in searches)],
        "gaps": [*(previous.get("gaps") or []), *(ResearchGap(gap=g, revision=revision) for g in gap_names)],
        "turn": int(state.get("turn") or 1),
        "revisions": revision,
    }
    update: dict[str, Any] = {"research": research}
    if usage:
        update["usage"] = usage
    if warnings:
        update["warnings"] = warnings
    return update


async def research(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    writer = runtime.stream_writer
    critique = state.get("critique") or {}
    if critique.get("passed") is False:
        # A revision of this turn: what the draft cites stays; only the critique's gaps may add to it.
        if wants_revision_research(state):
            return storable(await _revision_research(state, deps, writer))
        return {"warnings": ["research: called for a revision without research gaps to fill, or after "
                             f"{MAX_REVISION_ROUNDS} rounds; the sources stay as they were"]}
    # Search results and pages enter the state here, and from it every prompt and the stored
    # result: text with NUL or a lone surrogate would fail the model call that quotes it.
    return storable(await _first_research(state, deps, writer))
