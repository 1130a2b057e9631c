"""Checks that a piece of HTML is inert, made on the parsed document rather than on substrings:
the parser sees what a browser would (entities decoded, attributes split, case folded)."""

from __future__ import annotations

from html.parser import HTMLParser

DANGEROUS_TAGS = frozenset({"script", "style", "iframe", "frame", "object", "embed", "svg", "math", "base",
                            "form", "meta", "link", "template", "noscript"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "cite", "background", "poster"})
SAFE_SCHEMES = ("http:", "https:", "mailto:")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parse_tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    collector = _Collector()
    collector.feed(markup)
    collector.close()
    return collector.tags


def _url_is_safe(url: str) -> bool:
    # Browsers drop ASCII whitespace and control characters inside a scheme ("java\tscript:").
    squeezed = "".join(ch for ch in url if ord(ch) > 0x20).lower()
    scheme_end = squeezed.find(":")
    if scheme_end == -1 or any(ch in squeezed[:scheme_end] for ch in "/?#"):
        return True  # relative
    return squeezed.startswith(SAFE_SCHEMES)


def unsafe_parts(markup: str) -> list[str]:
    """Everything in ``markup`` that could run script or restyle the page; empty when inert."""
    problems = []
    for tag, attrs in parse_tags(markup):
        if tag in DANGEROUS_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in {"style", "srcdoc"}:
                problems.append(f"<{tag} {name}>")
            if name in URL_ATTRIBUTES and value is not None and not _url_is_safe(value):
                problems.append(f"<{tag} {name}={value!r}>")
        if tag == "a" and any(name == "href" for name, _ in attrs):
            rel = dict(attrs).get("rel") or ""
            if not {"noopener", "noreferrer"} <= set(rel.split()):
                problems.append(f"<a> without rel=noopener noreferrer: {attrs}")
    return problems


def assert_inert(markup: str) -> None:
    problems = unsafe_parts(markup)
    assert not problems, f"{problems} in {markup!r}"
    lowered = markup.lower()
    # Belt and braces over the parser: sanitised text escapes every "<", so these can only be
    # markup. (A payload's words, like "javascript:", may remain as harmless escaped text.)
    for needle in ("<script", "<iframe", "<svg", "<style", "<object", "<embed"):
        assert needle not in lowered, f"{needle!r} in {markup!r}"
