"""Whether a draft is about what was asked: the topic's terms and the requested keywords."""

from __future__ import annotations

import re

from graph import markdown as md
from graph.draft_text import has_phrase, topic_terms


def _has_term(term: str, lowered: str) -> bool:
    # Word-boundary match; long terms may take a suffix (plurals, -ing), short ones may not:
    # "ai" must not be found in "said".
    tail = r"\w{0,3}\b" if len(term) >= 4 else r"\b"
    return re.search(rf"\b{re.escape(term)}{tail}", lowered) is not None


def topic_coverage(text: str, topic: str) -> tuple[float, list[str]]:
    terms = topic_terms(topic)
    if not terms:
        return 1.0, []
    lowered = md.plain_text(text).lower()
    missing = [t for t in terms if not _has_term(t, lowered)]
    return (len(terms) - len(missing)) / len(terms), missing


def missing_keywords(text: str, keywords: list[str]) -> list[str]:
    plain = md.plain_text(text)
    return [k for k in keywords if k.strip() and not has_phrase(k, plain)]
