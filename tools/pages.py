"""Page reader: fetch a web page the research found and keep its readable main text.

The URLs come from search results, so they are untrusted input: a result (or a redirect) may
point at the machine's own services or the cloud metadata address. Every hop is checked the
way tools/pexels.py checks image downloads, and more: the host is resolved here, every address
it resolves to must be public, and the connection goes to the address that was checked (the
hostname travels in the Host header and TLS SNI), so a DNS answer that changes between the
check and the connect cannot slip a private address in.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Protocol

import httpx

from tools.checked_urls import check_https_url, follow_checked_redirects, normalise_hosts
from tools.errors import PageRejectedError, UnsafePageURLError, UpstreamError, UpstreamTimeoutError
from tools.http_retry import RetryPolicy, SleepFn, send_with_retry

DEFAULT_MAX_BYTES = 512 * 1024
DEFAULT_MAX_CHARS = 4000
DEFAULT_TIMEOUT = 10.0
_MAX_REDIRECTS = 3
_PAGE_TYPES = frozenset({"text/html", "text/plain"})
# Some sites refuse the default python-httpx agent outright; say who we are instead.
_USER_AGENT = "Mozilla/5.0 (compatible; DraftloopResearch/0.1; reads pages a search returned)"
# Paragraphs shorter than this are menu items, bylines and buttons rather than prose.
_MIN_PARAGRAPH_WORDS = 3

# Elements whose text is never the page's content.
_SKIPPED = frozenset({
    "script", "style", "noscript", "template", "svg", "math", "nav", "header", "footer", "aside", "form",
    "iframe", "head", "button", "select", "textarea", "canvas", "object", "dialog", "menu",
})
# Elements that end a paragraph of text.
_BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5",
    "h6", "br", "hr", "tr", "table", "blockquote", "pre", "figure", "figcaption", "details", "summary", "body",
})
# Where a page says its main content is; when present, everything outside it is ignored.
_MAIN = frozenset({"main", "article"})


@dataclass(frozen=True)
class Page:
    url: str  # the URL the text came from, after redirects
    title: str
    text: str  # paragraphs separated by blank lines, at most the reader's character cap
    truncated: bool = False  # the body was longer than the byte cap and was cut


class PageSource(Protocol):
    """What the research node needs: a page's readable text by URL (live, or replayed in evals)."""

    async def read(self, url: str) -> Page: ...


class _TextExtractor(HTMLParser):
    """Paragraphs of visible prose, each remembered with whether it sat inside <main>/<article>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[tuple[bool, str]] = []
        self.title_parts: list[str] = []
        self._current: list[str] = []
        self._skip = 0
        self._main = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Only the document's own title: an <svg> in the body may carry one too.
        if tag == "title" and not self.title_parts:
            self._in_title = True
        if tag in _SKIPPED:
            self._skip += 1
        elif tag in _BLOCKS:
            self._end_paragraph()
        if tag in _MAIN:
            self._main += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED:
            # An end tag without its start (broken markup) must not re-open skipped content.
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._end_paragraph()
        if tag in _MAIN:
            self._end_paragraph()
            self._main = max(0, self._main - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._end_paragraph()

    def _end_paragraph(self) -> None:
        text = " ".join("".join(self._current).split())
        self._current.clear()
        if text:
            self.paragraphs.append((self._main > 0, text))


def clip_paragraphs(paragraphs: Iterable[str], max_chars: int) -> str:
    """Whole paragraphs, blank-line separated, up to max_chars; the last one cut at a word."""
    kept: list[str] = []
    used = 0
    for paragraph in paragraphs:
        separator = 2 if kept else 0
        room = max_chars - used - separator
        if room <= 0:
            break
        if len(paragraph) > room:
            head = paragraph[:room]
            kept.append(head.rsplit(" ", 1)[0] if " " in head else head)
            break
        kept.append(paragraph)
        used += separator + len(paragraph)
    return "\n\n".join(kept)


def _prose(paragraphs: Iterable[str]) -> list[str]:
    return [p for p in paragraphs if len(p.split()) >= _MIN_PARAGRAPH_WORDS]


def html_text(html: str, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, str]:
    """(title, readable main text) of an HTML document."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    main = [text for inside, text in parser.paragraphs if inside]
    chosen = _prose(main) or _prose(text for _, text in parser.paragraphs)
    title = " ".join("".join(parser.title_parts).split())
    return title, clip_paragraphs(chosen, max_chars)


def plain_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Readable text of a text/plain body: its paragraphs with whitespace collapsed."""
    paragraphs = (" ".join(block.split()) for block in text.replace("\r\n", "\n").split("\n\n"))
    return clip_paragraphs((p for p in paragraphs if p), max_chars)


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Routable on the public internet: not loopback, private, link-local, multicast, reserved,
    unspecified or shared (CGNAT) space; IPv4 written as IPv6 is judged as the IPv4 it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )


def _decode(body: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    # A body cut at the byte cap may end inside a multi-byte character.
    return body.decode(encoding, errors="replace")


class PageReader:
    """Fetches pages over a caller-owned httpx.AsyncClient, hardened against SSRF."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_retries: int = 1,
        allow_insecure_hosts: Iterable[str] | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 5.0,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        """timeout bounds a whole read (resolution, redirects and body). allow_insecure_hosts is
        for tests only: those hosts may be fetched over plain http and may resolve to loopback
        or private addresses."""
        if max_bytes <= 0 or max_chars <= 0:
            raise ValueError("max_bytes and max_chars must be positive")
        self._http = http
        self._timeout = timeout
        self._request_timeout = httpx.Timeout(timeout)
        self._max_bytes = max_bytes
        self._max_chars = max_chars
        self._policy = RetryPolicy(max_retries=max_retries, base_delay=backoff_base, max_delay=backoff_max)
        self._insecure_hosts = normalise_hosts(allow_insecure_hosts)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"PageReader(timeout={self._timeout:g}, max_bytes={self._max_bytes})"

    def check_url(self, url: str) -> httpx.URL:
        """Accept only https URLs without credentials (plain http only for test hosts)."""
        parsed, _host = check_https_url(url, what="page", refusal=UnsafePageURLError,
                                        insecure_hosts=self._insecure_hosts)
        return parsed.copy_with(fragment=None)

    async def _pinned(self, target: httpx.URL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
        """(the URL to connect to, headers, request extensions) with the host resolved and checked."""
        host = target.raw_host.decode("ascii")
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UpstreamError(f"page host {host!r} could not be resolved: {exc}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise UpstreamError(f"page host {host!r} resolved to no address")
        if host.lower().rstrip(".") not in self._insecure_hosts:
            refused = next((a for a in addresses if not is_public_address(a)), None)
            if refused is not None:
                raise UnsafePageURLError(f"page host {host!r} resolves to a non-public address ({refused})")
        headers = {
            "Host": target.netloc.decode("ascii"),
            "Accept": "text/html, text/plain;q=0.9",
            "User-Agent": _USER_AGENT,
            # The connection is keyed by the address, not the name: a kept-alive connection
            # (and its TLS session for one name) must not be reused for another host there.
            "Connection": "close",
        }
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        # One address is tried, not all of them (happy eyeballs): IPv4 first, since a server
        # without an IPv6 route is commoner than a site without an IPv4 address.
        pinned = min(addresses, key=lambda a: a.version)
        return target.copy_with(host=str(pinned)), headers, extensions

    async def read(self, url: str) -> Page:
        """The page's title and readable main text. Never follows a hop it did not check."""
        target = self.check_url(url)
        try:
            async with asyncio.timeout(self._timeout):
                return await follow_checked_redirects(target, send=self._send, check=self.check_url,
                                                      handle=self._page, what="page", max_redirects=_MAX_REDIRECTS)
        except TimeoutError:
            raise UpstreamTimeoutError(f"page did not arrive within {self._timeout:g}s") from None

    async def _send(self, target: httpx.URL) -> httpx.Response:
        """One hop, streamed, to the pinned address of ``target``'s host."""
        connect, headers, extensions = await self._pinned(target)
        return await send_with_retry(
            self._http,
            "GET",
            str(connect),
            service="page",
            timeout=self._request_timeout,
            policy=self._policy,
            headers=headers,
            extensions=extensions,
            stream=True,
            follow_redirects=False,
            sleep=self._sleep,
        )

    async def _page(self, response: httpx.Response, target: httpx.URL) -> Page:
        if response.status_code != 200:
            raise UpstreamError(f"page server answered HTTP {response.status_code}", response.status_code)
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in _PAGE_TYPES:
            raise PageRejectedError(f"refusing page with Content-Type {media_type or 'none'!r}")
        body, truncated = await self._body(response)
        text = _decode(body, response.charset_encoding)
        if media_type == "text/plain":
            title, readable = "", plain_text(text, self._max_chars)
        else:
            # Parsing up to the byte cap of markup is CPU work worth keeping off the event loop.
            title, readable = await asyncio.to_thread(html_text, text, self._max_chars)
        if not readable:
            raise PageRejectedError("page has no readable text")
        return Page(url=str(target), title=title, text=readable, truncated=truncated)

    async def _body(self, response: httpx.Response) -> tuple[bytes, bool]:
        """At most max_bytes of the decoded body; (bytes, whether more was left unread)."""
        buffer = bytearray()
        try:
            # aiter_bytes yields decoded bytes, so the cap also bounds a compressed bomb.
            async for chunk in response.aiter_bytes():
                room = self._max_bytes - len(buffer)
                if len(chunk) > room:
                    buffer += chunk[:room]
                    return bytes(buffer), True
                buffer += chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"page download stalled ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"page download failed: {type(exc).__name__}: {exc}") from exc
        return bytes(buffer), False
