"""Markdown to HTML that is safe to put in a reader's page.

Post bodies come from people and from a model that read the open web, so both are untrusted.
markdown-it renders them with raw HTML turned off (a ``<script>`` in the body shows as text),
then nh3 keeps only an allow-list of tags, attributes and URL schemes. The sanitiser is the
security boundary: every byte of HTML we serve has been through ``sanitise_html``, so a renderer
bug or a later change of its options cannot let markup through. Raw HTML stays off for speed
too: deeply nested tags cost the HTML parser quadratic time, markdown's own nesting is capped.

Rendering is pure Python and costs up to a couple of CPU seconds at the size cap, so it
happens once, when a post is written, in a separate process with a CPU budget
(app/markdown_renderer.py); readers get the stored result. ``RENDER_VERSION`` names this
module's output: a post rendered by another version is rendered again on its next read, so a
tightened sanitiser still covers old posts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt

from graph import markdown as md

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
# Bump whenever the renderer's options, the allow-lists or the derived fields change: stored
# bodies of an older version are rendered again when next read.
RENDER_VERSION = 1

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
    """Sanitised HTML for a markdown body. CPU-bound and unbounded in time: async code goes
    through app/markdown_renderer.py."""
    return sanitise_html(_renderer.render(markdown))


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """What a post shows of its markdown, computed once per write: the sanitised HTML, the word
    count and the excerpt derived from the body (used when the post has none of its own)."""

    html: str
    word_count: int
    excerpt: str
    version: int = RENDER_VERSION


def render_body(markdown: str) -> RenderedBody:
    """Everything a read shows of ``markdown`` (CPU-bound, like ``render_markdown``)."""
    return RenderedBody(render_markdown(markdown), md.word_count(markdown), md.excerpt_of(markdown))


def unrendered_body(markdown: str) -> RenderedBody:
    """For a body that could not be rendered in its budget where nobody can be told (a run's
    finalize, an old post's first read): the text itself, escaped, in a ``<pre>``. Linear time;
    sanitised all the same, so that every byte served has been through the sanitiser."""
    # Text the renderer failed on may hold what nh3 cannot take (lone surrogates): "?" instead.
    text = markdown.encode("utf-8", "replace").decode("utf-8")
    return RenderedBody(sanitise_html(f"<pre>{html.escape(text, quote=False)}</pre>\n"),
                        md.word_count(text), md.excerpt_of(text))


def escape_text(text: str) -> str:
    """Plain text (a title) for an HTML element or attribute: every markup character escaped."""
    return html.escape(text, quote=True)
