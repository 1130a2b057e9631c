"""PageReader against a loopback web host: readable text, caps, content types, redirects, SSRF."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from devtools.fakes.pages import FakePages
from devtools.fakes.scripting import hang
from devtools.fakes.server import Response
from tools.errors import PageRejectedError, UnsafePageURLError, UpstreamError, UpstreamTimeoutError
from tools.pages import PageReader, html_text, is_public_address

PARAGRAPHS = [
    "The asyncio event loop runs coroutines on a single thread and switches at every await.",
    "Backend developers use it to serve many slow network clients without a thread per client.",
    "Blocking calls such as time.sleep stall every coroutine, so they belong in a worker thread.",
]


def reader(http: httpx.AsyncClient, *, test_hosts: bool = True, **options: object) -> PageReader:
    """A reader allowed to fetch the loopback fake over plain http, or (test_hosts False) the
    production reader that allows nothing but public https hosts."""
    return PageReader(http, allow_insecure_hosts={"127.0.0.1"} if test_hosts else None, sleep=_no_wait,
                      **options)  # type: ignore[arg-type]


async def _no_wait(_delay: float) -> None:
    """Retries in these tests need no real back-off."""


async def test_reads_the_main_text_without_scripts_navigation_header_or_footer(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    url = fake_pages.article("/async", "Async Python explained", PARAGRAPHS)
    page = await reader(http_client).read(url)
    assert page.title == "Async Python explained"
    assert page.url == url and page.truncated is False
    assert page.text.split("\n\n") == ["Async Python explained", *PARAGRAPHS]
    for noise in ("script", "header banner", "Home page", "sidebar", "Copyright", "color: black"):
        assert noise not in page.text


def test_without_a_main_element_every_visible_paragraph_counts() -> None:
    title, text = html_text("<html><body><div>First block of visible text.</div>"
                            "<script>no</script><p>Second block of visible text.</p></body></html>")
    assert title == ""
    assert text == "First block of visible text.\n\nSecond block of visible text."


async def test_plain_text_page_keeps_its_paragraphs_with_whitespace_collapsed(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    url = fake_pages.add("/notes.txt", Response(200, b"First   line\nof one paragraph.\n\nSecond one.",
                                                {"content-type": "text/plain; charset=utf-8"}))
    page = await reader(http_client).read(url)
    assert page.text == "First line of one paragraph.\n\nSecond one."


async def test_text_is_capped_at_max_chars_on_a_word_boundary(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    paragraphs = [f"Paragraph {n} talks about the event loop at length." for n in range(200)]
    url = fake_pages.article("/long", "Long", paragraphs)
    page = await reader(http_client, max_chars=500).read(url)
    whole = "\n\n".join(paragraphs)  # a one-word heading is not prose
    assert 450 < len(page.text) <= 500
    assert whole.startswith(page.text) and whole[len(page.text)] in " \n"


async def test_oversize_page_is_cut_at_the_byte_cap_while_streaming(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    paragraph = b"<p>" + b"evidence " * 100 + b"</p>"
    chunks = [b"<html><body><main>"] + [paragraph] * 4000  # about 3.6 MB, sent chunked
    url = fake_pages.add("/huge", Response(200, chunks, {"content-type": "text/html"}))
    page = await reader(http_client, max_bytes=64 * 1024, max_chars=100_000).read(url)
    assert page.truncated is True
    # Everything kept came from the first 64 KiB of markup.
    assert 0 < len(page.text) <= 64 * 1024


async def test_declared_charset_decodes_the_page(fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    url = fake_pages.html("/latin", "<p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e recipes here.</p>", charset="iso-8859-1")
    page = await reader(http_client).read(url)
    assert page.text == "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e recipes here."


@pytest.mark.parametrize("content_type", ["application/json", "image/png", "application/pdf", ""])
async def test_refuses_a_page_that_is_not_html_or_plain_text(
        fake_pages: FakePages, http_client: httpx.AsyncClient, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    url = fake_pages.add("/data", Response(200, b'{"not": "a page"}', headers))
    with pytest.raises(PageRejectedError, match="Content-Type"):
        await reader(http_client).read(url)


async def test_page_without_readable_text_is_refused(fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    url = fake_pages.html("/empty", "<html><head><script>app()</script></head><body><nav>Menu</nav></body></html>")
    with pytest.raises(PageRejectedError, match="no readable text"):
        await reader(http_client).read(url)


async def test_error_status_is_an_upstream_error(fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamError, match="404"):
        await reader(http_client).read(fake_pages.url("/missing"))


async def test_hanging_page_times_out(fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    fake_pages.faults.push(hang(), hang())
    url = fake_pages.article("/slow", "Slow", PARAGRAPHS)
    with pytest.raises(UpstreamTimeoutError):
        await reader(http_client, timeout=0.3).read(url)


async def test_follows_a_relative_redirect_and_reports_the_final_url(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    final = fake_pages.article("/new", "Moved", PARAGRAPHS)
    start = fake_pages.redirect("/old", "/new", status=301)
    page = await reader(http_client).read(start)
    assert page.url == final
    assert fake_pages.paths == ["/old", "/new"]


async def test_gives_up_after_three_redirects(fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    start = fake_pages.redirect("/loop", "/loop")
    with pytest.raises(UpstreamError, match="redirects"):
        await reader(http_client).read(start)
    assert fake_pages.paths == ["/loop"] * 4


async def test_connects_to_the_checked_address_sending_the_name_as_host(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    fake_pages.article("/named", "Named", PARAGRAPHS)
    page = await PageReader(http_client, allow_insecure_hosts={"localhost"}).read(
        f"http://localhost:{fake_pages.server.port}/named")
    assert page.title == "Named"
    request = fake_pages.requests[-1]
    assert request.headers["host"] == f"localhost:{fake_pages.server.port}"
    assert request.headers["connection"] == "close"


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/admin",
    "https://localhost/admin",
    "https://10.0.0.8/internal",
    "https://192.168.1.1/router",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/admin",
    "https://[::ffff:127.0.0.1]/admin",
    "https://0.0.0.0/",
    "https://100.64.0.1/cgnat",
])
async def test_refuses_a_host_that_resolves_to_a_non_public_address(
        http_client: httpx.AsyncClient, url: str) -> None:
    with pytest.raises(UnsafePageURLError, match="non-public address"):
        await reader(http_client, test_hosts=False).read(url)


async def test_loopback_page_is_refused_without_the_test_allow_list(
        fake_pages: FakePages, http_client: httpx.AsyncClient) -> None:
    url = fake_pages.article("/local", "Local", PARAGRAPHS)
    with pytest.raises(UnsafePageURLError, match="https"):
        await reader(http_client, test_hosts=False).read(url)
    with pytest.raises(UnsafePageURLError, match="non-public address"):
        await reader(http_client, test_hosts=False).read(url.replace("http://", "https://"))
    assert fake_pages.requests == []


@pytest.mark.parametrize("location", [
    "https://localhost:{port}/secret",
    "https://127.0.0.2:{port}/secret",
    "https://[::1]:{port}/secret",
    "https://10.1.2.3/secret",
    "https://169.254.169.254/latest/meta-data/iam",
    "http://example.com/plain",
])
async def test_refuses_a_redirect_to_a_private_address_or_plain_http(
        fake_pages: FakePages, http_client: httpx.AsyncClient, location: str) -> None:
    fake_pages.article("/secret", "Secret", ["Internal credentials that must never leave the host."])
    start = fake_pages.redirect("/start", location.format(port=fake_pages.server.port))
    with pytest.raises(UnsafePageURLError):
        await reader(http_client).read(start)
    assert fake_pages.paths == ["/start"]


@pytest.mark.parametrize("url", ["ftp://example.com/file", "https://user:pw@example.com/", "not a url", "https://"])
async def test_refuses_urls_that_are_not_plain_https(http_client: httpx.AsyncClient, url: str) -> None:
    with pytest.raises(UnsafePageURLError):
        await reader(http_client, test_hosts=False).read(url)


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("224.0.0.1", False), ("240.0.0.1", False),
    ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:10.0.0.1", False),
])
def test_public_address_rules(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
