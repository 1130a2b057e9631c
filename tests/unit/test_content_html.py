"""The markdown renderer and sanitiser: XSS payloads come out inert, ordinary content survives."""

from __future__ import annotations

import html

import pytest

from app.content_html import escape_text, render_body, render_markdown, sanitise_html, unrendered_body
from graph import markdown as md
from tests.html_safety import assert_inert, parse_tags, unsafe_parts

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<img src=x OnErRoR=alert(1)>",
    '<img src="java\tscript:alert(1)">',
    "<img src=\"data:image/svg+xml,<svg onload=alert(1)>\">",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="jav&#x61;script:alert(1)">click</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">click</a>',
    '<a href="  javascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    "<svg onload=alert(1)><circle r=1/></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<iframe src=https://evil.example></iframe>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<object data=https://evil.example/x.swf></object><embed src=https://evil.example/x.swf>",
    '<p style="background:url(javascript:alert(1))">styled</p>',
    '<div style="position:fixed;inset:0">overlay</div>',
    "<style>body{display:none}</style>",
    '<body onload=alert(1)>',
    '<details open ontoggle=alert(1)>',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<a href='https://ok.example' onclick='alert(1)'>ok</a>",
    '<a href="https://ok.example" rel="opener" target="_blank">ok</a>',
    "<!--<script>alert(1)</script>-->",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_a_payload_in_the_body_renders_inert(payload: str) -> None:
    assert_inert(render_markdown(payload))
    assert_inert(render_markdown(f"# Title\n\nSome text {payload} more text.\n\n{payload}\n"))


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_the_sanitiser_alone_makes_raw_html_inert(payload: str) -> None:
    assert_inert(sanitise_html(payload))


def test_the_sanitiser_drops_a_script_with_its_text() -> None:
    assert sanitise_html("<p>a</p><script>alert(1)</script>") == "<p>a</p>"


def test_code_that_mentions_script_is_shown_escaped() -> None:
    rendered = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered


def test_links_keep_their_target_and_get_noopener_noreferrer() -> None:
    tags = parse_tags(render_markdown("[docs](https://docs.python.org/3/) and [mail](mailto:a@example.com)"))
    links = [dict(attrs) for tag, attrs in tags if tag == "a"]
    assert [link["href"] for link in links] == ["https://docs.python.org/3/", "mailto:a@example.com"]
    assert all(link["rel"] == "noopener noreferrer" for link in links)


def test_ordinary_markdown_survives_sanitising() -> None:
    source = ("# Heading\n\nSome **bold**, *em*, ~~gone~~ and `code`.\n\n> quoted\n\n- one\n- two\n\n"
              "1. first\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![alt text](https://images.example/p.jpg)\n")
    rendered = render_markdown(source)
    tags = {tag for tag, _ in parse_tags(rendered)}
    assert {"h1", "strong", "em", "s", "code", "blockquote", "ul", "ol", "li", "table", "th", "td", "img"} <= tags
    image = next(dict(attrs) for tag, attrs in parse_tags(rendered) if tag == "img")
    assert image == {"src": "https://images.example/p.jpg", "alt": "alt text"}
    assert unsafe_parts(rendered) == []


def test_relative_links_pass() -> None:
    link = next(dict(attrs) for tag, attrs in parse_tags(render_markdown("[home](/posts/home)")) if tag == "a")
    assert link["href"] == "/posts/home"


@pytest.mark.parametrize("title", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "Tom & Jerry's <b>"])
def test_a_title_is_escaped_to_text(title: str) -> None:
    escaped = escape_text(title)
    assert parse_tags(escaped) == []
    assert "<" not in escaped and '"' not in escaped
    assert html.unescape(escaped) == title


def test_raw_html_in_the_body_is_shown_as_text() -> None:
    rendered = render_markdown('<b onclick="x()">bold</b>')
    assert parse_tags(rendered) == [("p", [])]
    assert '&lt;b onclick="x()"&gt;bold&lt;/b&gt;' in rendered


def test_a_rendered_body_carries_its_html_word_count_and_excerpt() -> None:
    rendered = render_body("First **real** paragraph, cited [1].\n\n## Part\n\nMore words here.")
    assert rendered.html == render_markdown("First **real** paragraph, cited [1].\n\n## Part\n\nMore words here.")
    assert (rendered.word_count, rendered.excerpt) == (8, "First real paragraph, cited [1].")


def test_a_link_whose_url_has_parentheses_counts_as_its_text() -> None:
    body = "See [the article](https://en.wikipedia.org/wiki/Rust_(programming_language)) today."
    assert md.plain_text(body) == "See the article today."
    assert (md.word_count(body), md.excerpt_of(body)) == (4, "See the article today.")


def test_unclosed_brackets_are_plain_text_to_the_word_count() -> None:
    # Runs of unclosed "[" or "](" once made each of these scans rescan the rest of the body.
    assert md.word_count("[a](" * 5 + "[b]") == 6
    assert md.plain_text("[" * 5 + "x") == "[" * 5 + "x"


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_a_body_shown_as_text_is_inert(payload: str) -> None:
    shown = unrendered_body(f"Before.\n\n{payload}\n\nAfter {payload}.")
    assert_inert(shown.html)
    assert [tag for tag, _ in parse_tags(shown.html)] == ["pre"]
    assert html.unescape(shown.html) == f"<pre>Before.\n\n{payload}\n\nAfter {payload}.</pre>\n"
