"""Markdown to HTML that is safe to put in a reader's page.

Post bodies come from people and from a model that read the open web, so both are untrusted.
markdown-it renders them with raw HTML turned off (a ``<script>`` in the body shows as text),
then nh3 keeps only an allow-list of tags, attributes and URL schemes. The sanitiser is the
security boundary: every byte of HTML we serve has been through ``sanitise_html``, so a renderer
bug or a later change of its options cannot let markup through. Raw HTML stays off for speed
too: deeply nested tags cost the HTML parser quadratic time, markdown's own nesting is capped.

Rendering is pure Python and some inputs are slow (tens of thousands of ``[``), so readers get
it from a worker thread, and a bounded cache keeps a page of posts from rendering again.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections import OrderedDict
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "dl", "dt", "em", "figcaption",
    "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
# No style, class or id anywhere: they let content restyle or overlay the host page. No `rel`
# or `target` either: nh3 sets rel itself (LINK_REL) and refuses a policy that also allows it.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "q": {"cite"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
# javascript:, data:, vbscript: and every other scheme are dropped with the attribute;
# relative URLs pass (they resolve against the reader's own site).
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer"
# Removed together with their content; any other tag outside the allow-list is unwrapped and
# its text kept (escaped), so a stray <center> does not swallow a paragraph.
DROP_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "template",
    "svg", "math", "textarea", "select", "title",
})
# Total characters of HTML the cache may hold (about 2-4 bytes each).
CACHE_BUDGET_CHARS = 8_000_000

_renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def sanitise_html(markup: str) -> str:
    """``markup`` reduced to the allow-list; anything else is removed or made text."""
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_markdown(markdown: str) -> str:
    """Sanitised HTML for a markdown body (CPU-bound: from async code use ``render_many``)."""
    return sanitise_html(_renderer.render(markdown))


class RenderCache:
    """Least recently used first out, bounded by the characters of HTML it holds. Keyed by a
    digest so that large bodies are not kept twice. Used from the event loop only."""

    def __init__(self, budget_chars: int = CACHE_BUDGET_CHARS) -> None:
        self.budget_chars = budget_chars
        self.size_chars = 0
        self._items: OrderedDict[bytes, str] = OrderedDict()

    @staticmethod
    def key(markdown: str) -> bytes:
        return hashlib.blake2b(markdown.encode("utf-8", "surrogatepass"), digest_size=20).digest()

    def get(self, key: bytes) -> str | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: bytes, rendered: str) -> None:
        if len(rendered) > self.budget_chars or key in self._items:
            return
        self._items[key] = rendered
        self.size_chars += len(rendered)
        while self.size_chars > self.budget_chars:
            _, dropped = self._items.popitem(last=False)
            self.size_chars -= len(dropped)


_cache = RenderCache()


def _render_all(bodies: list[str]) -> list[str]:
    return [render_markdown(body) for body in bodies]


async def render_many(bodies: Sequence[str]) -> list[str]:
    """Sanitised HTML for each markdown body, in order: cached ones at once, the others
    rendered together in a worker thread so that a slow body does not stall the event loop."""
    keys = [RenderCache.key(body) for body in bodies]
    # Hits are taken now: the cache may evict them while the thread works.
    found: dict[bytes, str] = {}
    missing: dict[bytes, str] = {}
    for key, body in zip(keys, bodies, strict=True):
        if key in found or key in missing:
            continue
        hit = _cache.get(key)
        if hit is None:
            missing[key] = body
        else:
            found[key] = hit
    if missing:
        rendered = await asyncio.to_thread(_render_all, list(missing.values()))
        for key, markup in zip(missing, rendered, strict=True):
            found[key] = markup
            _cache.put(key, markup)
    return [found[key] for key in keys]


def escape_text(text: str) -> str:
    """Plain text (a title) for an HTML element or attribute: every markup character escaped."""
    return html.escape(text, quote=True)
