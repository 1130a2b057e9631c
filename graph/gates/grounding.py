"""Grounding: URLs and citation numbers in a draft that no source (nor the request) backs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graph.draft_text import citation_numbers, normalise_url, urls_in


def allowed_urls(sources: Sequence[Mapping[str, Any]], request_text: str = "") -> set[str]:
    urls = {normalise_url(str(s.get("url") or "")) for s in sources if s.get("url")}
    urls |= {normalise_url(u) for u in urls_in(request_text)}
    return urls


def invented_urls(text: str, sources: Sequence[Mapping[str, Any]], request_text: str = "") -> list[str]:
    """URLs in the text that are neither a source's nor given in the request."""
    allowed = allowed_urls(sources, request_text)
    return [u for u in urls_in(text) if normalise_url(u) not in allowed]


def dangling_citations(text: str, source_count: int) -> list[int]:
    return [n for n in citation_numbers(text) if not 1 <= n <= source_count]
