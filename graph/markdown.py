"""Facts about a markdown draft: title, sections, words, excerpt, slug and SEO fields."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_H2 = re.compile(r"^##\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Link text without brackets and a destination with at most one level of parentheses: each
# scan stops at the next bracket or parenthesis, so a long run of unclosed ``[`` or ``](`` costs
# linear time (``[^\]]*`` and ``[^)]*`` rescanned the rest of the text from every ``[``).
_MD_NOISE = re.compile(r"(!?\[([^\[\]]*)\]\([^()]*(?:\([^()]*\)[^()]*)*\))|[`*_>#]")
_CONCLUSION_WORDS = ("conclusion", "summary", "wrapping up", "final thoughts", "takeaways", "in closing", "next steps")
WORDS_PER_MINUTE = 230


def plain_text(markdown: str) -> str:
    return _MD_NOISE.sub(lambda m: m.group(2) or "", markdown)


# A citation marker: [3], [1, 4], [2-5]; not a link's [text](url).
CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\](?!\()")


def word_count(markdown: str) -> int:
    """Words a reader reads: no markdown syntax, no [n] citation markers."""
    return len(_WORD.findall(plain_text(CITATION.sub("", markdown))))


def escape_link_text(text: str) -> str:
    """Text safe inside a markdown link's brackets."""
    return re.sub(r"([\[\]\\])", r"\\\1", " ".join(text.split()))


def title_of(markdown: str) -> str:
    match = _H1.search(markdown)
    return match.group(1).strip() if match else ""


def sections_of(markdown: str) -> list[str]:
    return [m.group(1).strip() for m in _H2.finditer(markdown)]


def has_conclusion(markdown: str) -> bool:
    headings = [h.lower() for h in sections_of(markdown)]
    if any(word in h for h in headings for word in _CONCLUSION_WORDS):
        return True
    paragraphs = [p for p in markdown.strip().split("\n\n") if p.strip()]
    tail = paragraphs[-1].lower() if paragraphs else ""
    return any(word in tail for word in ("in conclusion", "to sum up", "in summary", "to conclude"))


def excerpt_of(markdown: str, limit: int = 200) -> str:
    """The first real paragraph, cut at a word boundary."""
    for block in markdown.split("\n\n"):
        block = block.strip()
        if not block or block.startswith(("#", "!", "|", "```", "-", "*")):
            continue
        text = " ".join(plain_text(block).split())
        if len(text) <= limit:
            return text
        return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return ""


def reading_minutes(words: int) -> int:
    return max(1, round(words / WORDS_PER_MINUTE))


def slugify(text: str, limit: int = 80) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "post"


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def seo_fields(title: str, excerpt: str, keywords: list[str]) -> dict[str, object]:
    """SEO title <= 60 chars, meta description <= 160, at most 10 keywords, and a slug."""
    return {
        "seo_title": clip(title, 60),
        "meta_description": clip(excerpt, 160),
        "keywords": list(dict.fromkeys(k.strip() for k in keywords if k.strip()))[:10],
        "slug": slugify(title),
    }
