"""Research sources as numbered references: how writers and judges see them, and which a text cites."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graph import draft_text

SNIPPET_CHARS = 400
EVIDENCE_CHARS = 900


def numbered(sources: Sequence[Mapping[str, Any]], *, evidence: bool = True) -> str:
    """`[n] Title (date) — url` with the snippet, and page evidence when it was fetched."""
    if not sources:
        return "(no sources: write nothing that needs one)"
    lines = []
    for index, source in enumerate(sources, 1):
        date = f" ({source['date']})" if source.get("date") else ""
        lines.append(f"[{index}] {source.get('title', '').strip()}{date} — {source.get('url', '')}")
        snippet = " ".join(str(source.get("snippet") or "").split())[:SNIPPET_CHARS]
        if snippet:
            lines.append(f"    {snippet}")
        page = " ".join(str(source.get("evidence") or "").split())[:EVIDENCE_CHARS] if evidence else ""
        if page:
            lines.append(f"    From the page: {page}")
    return "\n".join(lines)


def excerpt(text: str, query: str, limit: int = EVIDENCE_CHARS) -> str:
    """The page's paragraphs that share most terms with the query, in page order, within
    `limit` characters; the page's opening when none shares a term."""
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    wanted = set(draft_text.topic_terms(query))
    shared = [len(wanted & set(draft_text.topic_terms(p))) for p in paragraphs]
    ranked = sorted(range(len(paragraphs)), key=lambda i: (-shared[i], i))
    relevant = any(shared)
    chosen: list[int] = []
    used = 0
    for index in ranked:
        if relevant and not shared[index]:
            break
        paragraph = paragraphs[index]
        if used + len(paragraph) > limit:
            if chosen:
                continue
            # Even the best paragraph alone is too long: keep its start, cut at a word.
            paragraph = paragraph[:limit].rsplit(" ", 1)[0]
            paragraphs[index] = paragraph
        chosen.append(index)
        used += len(paragraph) + 1
    return "\n\n".join(paragraphs[i] for i in sorted(chosen))


def cited_numbers(text: str, sources: Sequence[Mapping[str, Any]]) -> list[int]:
    """The 1-based numbers of the sources a text cites, as [n] or by linking the source's URL."""
    cited = [n for n in draft_text.citation_numbers(text) if 1 <= n <= len(sources)]
    linked = {draft_text.normalise_url(u) for u in draft_text.urls_in(text)}
    for index, source in enumerate(sources, 1):
        if source.get("url") and draft_text.normalise_url(str(source["url"])) in linked and index not in cited:
            cited.append(index)
    return cited
