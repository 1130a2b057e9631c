"""finalize: assemble the result (SEO, image credit, sources, usage) and persist the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph import draft_text, formats
from graph import markdown as md
from graph.context import DraftloopContext, dependencies
from graph.memory import owner_of, record_piece
from graph.nodes.draft import turn_attempts
from graph.sources import cited_numbers
from graph.state import Piece, State, UsageRecord


def usage_totals(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "input_tokens": sum(int(r.get("input_tokens") or 0) for r in records),
        "output_tokens": sum(int(r.get("output_tokens") or 0) for r in records),
        "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in records), 8),
        "calls": len(records),
    }


def turn_usage(state: State) -> list[UsageRecord]:
    turn = int(state.get("turn") or 1)
    return [u for u in state.get("usage") or [] if int(u.get("turn", 1)) == turn]


def sources_section(sources: Sequence[Mapping[str, Any]], cited: list[int]) -> str:
    """The `## Sources` list of what the text cited, under the numbers its [n] markers use."""
    lines = []
    for n in sorted(cited):
        source = sources[n - 1]
        title = md.escape_link_text(str(source.get("title") or source.get("url") or ""))
        lines.append(f"- [{n}] [{title}]({source.get('url', '')})")
    return "## Sources\n\n" + "\n".join(lines)


def with_sources(markdown: str, content_type: str, sources: Sequence[Mapping[str, Any]]) -> tuple[str, list[int]]:
    """The shipped text (with its Sources list where the type carries one) and the numbers of
    the sources it cites. A list the writer added anyway is replaced by the true one."""
    body = draft_text.strip_sources_section(markdown.strip())
    cited = cited_numbers(body, sources)
    if content_type in formats.CITING_TYPES and cited:
        return f"{body}\n\n{sources_section(sources, cited)}\n", cited
    return body, cited


def build_result(state: State) -> dict[str, Any]:
    request = state.get("request", {})
    draft = state.get("draft", {})
    verdict = state.get("critique", {})
    research = state.get("research") or {}
    content_type = str(request.get("content_type") or "blog_post")
    all_sources = list(research.get("sources") or [])
    markdown, cited = with_sources(draft.get("markdown", ""), content_type, all_sources)
    title = draft.get("title") or md.title_of(markdown) or str(request.get("topic", "")).strip().capitalize()
    excerpt = md.excerpt_of(draft_text.body_of(markdown, content_type))
    words = draft_text.count_words(markdown, content_type)
    images = research.get("images") or []
    featured = images[0] if images and request.get("images") else None
    usage = turn_usage(state)
    last_model = usage[-1] if usage else {}
    return {
        "kind": "content",
        "content_type": request.get("content_type"),
        "title": title,
        "markdown": markdown,
        "excerpt": excerpt,
        "word_count": words,
        "reading_minutes": md.reading_minutes(words),
        "seo": md.seo_fields(title, excerpt, list(request.get("keywords") or [])),
        "featured_image": featured,
        # Every source found, numbered as the text cites them, saying which the text used.
        "sources": [{**source, "n": n, "cited": n in cited} for n, source in enumerate(all_sources, 1)],
        "images": images,
        "score": verdict.get("score"),
        "passed": bool(verdict.get("passed")),
        "dimensions": verdict.get("dimensions") or {},
        "attempt": verdict.get("number") or draft.get("number"),
        "attempts": len(turn_attempts(state)),
        "approval": state.get("approval") or None,
        "model": last_model.get("model", ""),
        "provider": last_model.get("provider", ""),
        "usage": usage_totals(usage),
        "warnings": list(dict.fromkeys(state.get("warnings") or [])),
    }


async def persist(state: State, result: dict[str, Any], config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> None:
    # The outcome only: how the run ended (and so the task's status) is for whoever runs the
    # graph to record once it has really ended (app/engine/run_end.py, app/cli/task_row.py).
    deps = await dependencies(runtime)
    if deps.save_outcome is None:
        return
    configurable = config.get("configurable") or {}
    thread_id = str(configurable.get("thread_id") or "")
    # A thread holds one row per run: the service names the row this run writes to.
    task_id = configurable.get("task_id")
    await deps.save_outcome({
        "thread_id": thread_id,
        **({"task_id": str(task_id)} if task_id else {}),
        "request": state.get("request", {}).get("text", ""),
        "params": state.get("request", {}),
        "intent": state.get("intent", {}),
        "result": result,
        # Every turn's attempts and usage: a follow-up adds to the thread's record, never replaces it.
        "attempts": state.get("attempts") or [],
        "usage": state.get("usage") or [],
        "warnings": result.get("warnings", []),
        "model": result.get("model", ""),
        "provider": result.get("provider", ""),
    })


async def finalize(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    result = build_result(state)
    await persist(state, result, config, runtime)
    # Remembered for this user's next piece on a related topic (graph/memory.py): its angle is the excerpt.
    await record_piece(runtime.store, owner_of(config), str((config.get("configurable") or {}).get("thread_id") or ""),
                       str(state.get("request", {}).get("topic") or ""), result["title"], result["excerpt"])
    summary = f"{result['title']} — {result['word_count']} words, score {result['score']}, " \
              f"{'passed' if result['passed'] else 'did not pass'} after {result['attempts']} attempt(s)."
    # The piece a follow-up on this thread revises, with the request it was written for.
    piece = Piece(request=state.get("request", {}), title=result["title"], markdown=result["markdown"])
    return {"result": result, "piece": piece, "messages": [AIMessage(content=result["markdown"] or summary)]}
