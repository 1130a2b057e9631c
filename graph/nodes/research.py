"""research: web, news (and shopping for commercial topics) and images, concurrently.

A provider that fails or is not configured becomes a warning in state, never a failed run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from langgraph.runtime import Runtime

from graph.context import DraftloopContext, dependencies
from graph.intent_rules import is_commercial
from graph.state import Image, Source, State
from tools.errors import NotConfiguredError, ToolError
from tools.pexels import Photo
from tools.serper import SearchResult

T = TypeVar("T")


async def _guarded(label: str, call: Awaitable[list[T]], warnings: list[str], deadline: float) -> list[T]:
    # Each client retries within its own bounds; the deadline caps the whole research step so a
    # slow provider delays the draft by seconds, not minutes.
    try:
        return await asyncio.wait_for(call, deadline)
    except TimeoutError:
        warnings.append(f"research: {label} gave no answer within {deadline:g}s")
    except NotConfiguredError as exc:
        warnings.append(f"research: {label} skipped: {exc}")
    except ToolError as exc:
        warnings.append(f"research: {label} failed: {exc}")
    return []


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


async def research(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    request = state.get("request", {})
    topic = request.get("topic") or request.get("text") or ""
    limit = deps.settings.search_results
    warnings: list[str] = []
    calls: dict[str, Awaitable[list[Any]]] = {}
    if request.get("research", True):
        calls["web search"] = deps.serper.search_web(topic, limit)
        calls["news search"] = deps.serper.search_news(topic, limit)
        if is_commercial(topic) or is_commercial(request.get("text", "")):
            calls["shopping search"] = deps.serper.search_shopping(topic, limit)
    if request.get("images"):
        calls["image search"] = deps.pexels.search_images(topic, orientation="landscape", limit=3)
    results = await asyncio.gather(*(_guarded(label, call, warnings, deps.settings.research_timeout) for label, call in calls.items()))
    by_label = dict(zip(calls, results, strict=True))

    seen: set[str] = set()
    sources: list[Source] = []
    for label in ("web search", "news search", "shopping search"):
        for result in by_label.get(label, []):
            if result.url and result.url not in seen:
                seen.add(result.url)
                sources.append(_source(result))
    images = [_image(photo) for photo in by_label.get("image search", [])]
    update: dict[str, Any] = {"research": {"sources": sources, "images": images, "warnings": warnings}}
    if warnings:
        update["warnings"] = warnings
    return update
