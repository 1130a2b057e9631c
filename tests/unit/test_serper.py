"""SerperClient against the loopback Serper fake: parsing, retries, timeouts, errors, secrecy."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest

from devtools.fakes.scripting import echo_headers, hang, junk, key_fragments, reset, status
from devtools.fakes.serper import FAKE_SERPER_KEY, FakeSerper
from tools.client_settings import ClientSettings
from tools.errors import (
    BadResponseError,
    NotConfiguredError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tools.http_retry import parse_retry_after
from tools.serper import SearchResult, SerperClient

BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
# Generous guard so a regression that ignores the timeout fails the test instead of hanging it.
GUARD_SECONDS = 10


class SleepRecorder:
    """Stands in for asyncio.sleep so retry waits are asserted, not spent."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.waits.append(delay)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def make_client(
    fake: FakeSerper,
    http: httpx.AsyncClient,
    sleep: SleepRecorder,
    *,
    api_key: str | None = FAKE_SERPER_KEY,
    timeout: float = 5.0,
    max_retries: int = 3,
) -> SerperClient:
    return SerperClient(
        http,
        api_key,
        base_url=fake.base_url,
        timeout=timeout,
        max_retries=max_retries,
        backoff_base=BACKOFF_BASE,
        backoff_max=BACKOFF_MAX,
        sleep=sleep,
    )


async def test_search_web_returns_typed_organic_results(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_web("async python", limit=5)

    assert [r.position for r in results] == [1, 2, 3]
    first, second = results[0], results[1]
    assert first == SearchResult(
        title="Async IO in Python: A Complete Walkthrough",
        url="https://realpython.com/async-io-python/",
        snippet="This tutorial will give you a firm grasp of Python's approach to async IO.",
        position=1,
        kind="web",
    )
    assert second.date == "Jan 5, 2025"
    assert all(r.kind == "web" and r.source is None and r.price is None for r in results)


async def test_search_posts_query_and_limit_with_the_key_header(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    await client.search_web("async python", limit=7)

    [request] = fake_serper.requests
    assert (request.method, request.path) == ("POST", "/search")
    assert request.headers["x-api-key"] == FAKE_SERPER_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"q": "async python", "num": 7}


async def test_search_news_parses_source_and_date(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_news("python release")

    assert fake_serper.requests[0].path == "/news"
    assert results[0].source == "Example News"
    assert results[0].date == "2 days ago"
    assert results[0].snippet == "The new release makes the GIL optional."
    assert all(r.kind == "news" for r in results)


async def test_news_result_without_position_is_numbered_by_order(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_news("python release")

    assert results[1].position == 2
    assert results[1].source == "Dev Weekly"


async def test_search_shopping_parses_price_and_builds_snippet(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_shopping("python books")

    assert fake_serper.requests[0].path == "/shopping"
    top = results[0]
    assert (top.kind, top.price, top.source) == ("shopping", "$49.99", "Bookshop")
    assert top.url == "https://shop.example.com/fluent-python"
    assert top.snippet == "$49.99 at Bookshop, rated 4.8"
    assert results[1].snippet == "$39.00 at Books & Co"


async def test_truncates_results_to_limit_when_upstream_sends_more(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.honour_num = False
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_web("async python", limit=2)

    assert len(results) == 2


async def test_missing_results_list_means_no_results(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(status(200, payload={"searchParameters": {"q": "zzz"}}))
    client = make_client(fake_serper, http_client, sleeps)

    assert await client.search_web("zzz") == []


async def test_retries_after_429_honouring_retry_after(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(status(429, retry_after="2"))
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_web("async python")

    assert len(results) == 3
    assert sleeps.waits == [2.0]
    assert len(fake_serper.requests) == 2


async def test_honours_retry_after_given_as_http_date(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    fake_serper.faults.push(status(429, retry_after=when))
    client = make_client(fake_serper, http_client, sleeps)

    await client.search_web("async python")

    [wait] = sleeps.waits
    # HTTP-dates have one-second resolution, so the wait is "about five seconds".
    assert 3.0 <= wait <= 5.0


async def test_caps_a_huge_retry_after_at_max_backoff(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(status(429, retry_after="3600"))
    client = make_client(fake_serper, http_client, sleeps)

    await client.search_web("async python")

    assert sleeps.waits == [BACKOFF_MAX]


async def test_sleeps_for_real_with_the_default_sleep(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient
) -> None:
    fake_serper.faults.push(status(429, retry_after="0.01"))
    client = SerperClient(http_client, FAKE_SERPER_KEY, base_url=fake_serper.base_url, timeout=5.0)

    assert len(await client.search_web("async python")) == 3


async def test_persistent_429_raises_rate_limited_with_retry_after(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(*[status(429, retry_after="1") for _ in range(3)])
    client = make_client(fake_serper, http_client, sleeps, max_retries=2)

    with pytest.raises(RateLimitedError) as caught:
        await client.search_web("async python")

    assert caught.value.retry_after == 1.0
    assert "429" in str(caught.value) and "3 attempts" in str(caught.value)
    assert len(fake_serper.requests) == 3


async def test_retries_after_500_then_succeeds(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(status(500))
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_news("python release")

    assert len(results) == 2
    [wait] = sleeps.waits
    assert BACKOFF_BASE <= wait <= BACKOFF_BASE * 1.2


async def test_persistent_500_raises_upstream_error_after_bounded_backoff(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(*[status(503) for _ in range(10)])
    client = make_client(fake_serper, http_client, sleeps, max_retries=3)

    with pytest.raises(UpstreamError) as caught:
        await client.search_web("async python")

    assert caught.value.status_code == 503
    assert len(fake_serper.requests) == 4
    assert len(sleeps.waits) == 3
    # Exponential: each wait at least doubles the base of the previous one.
    assert sleeps.waits[0] < sleeps.waits[1] < sleeps.waits[2] <= BACKOFF_MAX
    assert sleeps.waits[2] >= BACKOFF_BASE * 4


async def test_hanging_server_ends_at_the_timeout_with_upstream_timeout_error(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(hang(), hang())
    client = make_client(fake_serper, http_client, sleeps, timeout=0.3, max_retries=1)

    with pytest.raises(UpstreamTimeoutError) as caught:
        await asyncio.wait_for(client.search_web("async python"), GUARD_SECONDS)

    assert isinstance(caught.value, UpstreamError)
    assert "timed out" in str(caught.value)
    assert len(fake_serper.requests) == 2


async def test_recovers_when_a_timeout_is_followed_by_an_answer(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(hang())
    client = make_client(fake_serper, http_client, sleeps, timeout=0.3)

    results = await asyncio.wait_for(client.search_web("async python"), GUARD_SECONDS)

    assert len(results) == 3


async def test_retries_after_connection_reset(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(reset())
    client = make_client(fake_serper, http_client, sleeps)

    results = await client.search_shopping("python books")

    assert len(results) == 2
    assert len(sleeps.waits) == 1


async def test_persistent_connection_reset_raises_upstream_error(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(reset(), reset())
    client = make_client(fake_serper, http_client, sleeps, max_retries=1)

    with pytest.raises(UpstreamError) as caught:
        await client.search_web("async python")

    assert caught.value.status_code is None
    assert not isinstance(caught.value, UpstreamTimeoutError)


async def test_unreachable_server_raises_upstream_error(
    http_client: httpx.AsyncClient, sleeps: SleepRecorder, free_port: int
) -> None:
    client = SerperClient(
        http_client, FAKE_SERPER_KEY, base_url=f"http://127.0.0.1:{free_port}", timeout=2.0, max_retries=1, sleep=sleeps
    )

    with pytest.raises(UpstreamError, match="ConnectError"):
        await client.search_web("async python")

    assert len(sleeps.waits) == 1


async def test_malformed_json_raises_bad_response_error_without_retrying(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(junk())
    client = make_client(fake_serper, http_client, sleeps)

    with pytest.raises(BadResponseError, match="not valid JSON"):
        await client.search_web("async python")

    assert len(fake_serper.requests) == 1


@pytest.mark.parametrize(
    "payload",
    [
        ["not", "an", "object"],
        {"organic": "not a list"},
        {"organic": ["not an object"]},
        {"organic": [{"title": "no link", "snippet": "x"}]},
        {"organic": [{"title": 42, "link": "https://example.com"}]},
    ],
)
async def test_unexpected_shape_raises_bad_response_error(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder, payload: object
) -> None:
    fake_serper.faults.push(status(200, payload=payload))
    client = make_client(fake_serper, http_client, sleeps)

    with pytest.raises(BadResponseError):
        await client.search_web("async python")


async def test_missing_key_raises_not_configured_before_any_request(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_serper, http_client, sleeps, api_key=None)

    assert client.configured is False
    for search in (client.search_web, client.search_news, client.search_shopping):
        with pytest.raises(NotConfiguredError, match="SERPER_API_KEY"):
            await search("async python")

    assert fake_serper.requests == []


async def test_rejected_key_is_not_retried_and_never_appears_in_the_error(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    wrong_key = "wrong-serper-key-0b7e61"
    client = make_client(fake_serper, http_client, sleeps, api_key=wrong_key)

    with pytest.raises(UpstreamError) as caught:
        await client.search_web("async python")

    message = str(caught.value)
    assert caught.value.status_code == 403
    assert "rejected the API key" in message and "SERPER_API_KEY" in message
    assert wrong_key not in message
    assert len(fake_serper.requests) == 1
    assert sleeps.waits == []


async def test_key_echoed_by_the_upstream_is_redacted_from_errors(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    echo = {"message": f"internal error for key {FAKE_SERPER_KEY}"}
    fake_serper.faults.push(*[status(500, payload=echo) for _ in range(2)])
    client = make_client(fake_serper, http_client, sleeps, max_retries=1)

    with pytest.raises(UpstreamError) as caught:
        await client.search_web("async python")

    assert FAKE_SERPER_KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert FAKE_SERPER_KEY not in repr(client)


# Where the echoed key starts in the body, whose first 200 characters an error quotes: 184 cut
# it after 16 of its 22 characters, as a Serper key leaked into task warnings.
@pytest.mark.parametrize("value_at", [150, 184, 190, 197, 199, 200])
async def test_a_key_echoed_across_the_quoted_part_of_a_4xx_leaves_no_piece_of_itself(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder, value_at: int
) -> None:
    fake_serper.faults.push(echo_headers(400, "X-API-KEY", value_at))
    client = make_client(fake_serper, http_client, sleeps)

    with pytest.raises(UpstreamError) as caught:
        await client.search_web("async python")

    message = str(caught.value)
    assert "request rejected" in message  # the upstream's words are still quoted
    assert key_fragments(message, FAKE_SERPER_KEY) == []


async def test_other_4xx_fails_immediately(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_serper.faults.push(status(400, payload={"message": "Query too long"}))
    client = make_client(fake_serper, http_client, sleeps)

    with pytest.raises(UpstreamError, match="Query too long") as caught:
        await client.search_web("async python")

    assert caught.value.status_code == 400
    assert len(fake_serper.requests) == 1


@pytest.mark.parametrize("query, limit", [("", 10), ("   ", 10), ("ok", 0), ("ok", 101)])
async def test_rejects_empty_query_or_out_of_range_limit(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient, sleeps: SleepRecorder, query: str, limit: int
) -> None:
    client = make_client(fake_serper, http_client, sleeps)

    with pytest.raises(ValueError):
        await client.search_web(query, limit=limit)

    assert fake_serper.requests == []


async def test_client_settings_read_key_base_url_and_timeout(
    fake_serper: FakeSerper, http_client: httpx.AsyncClient
) -> None:
    settings = ClientSettings.from_env({"SERPER_API_KEY": FAKE_SERPER_KEY, "SERPER_BASE_URL": fake_serper.base_url,
                                        "SERPER_TIMEOUT": "3.5"})

    client = settings.serper_client(http_client)

    assert client.configured
    assert len(await client.search_web("async python")) == 3


async def test_client_settings_without_a_serper_key_give_an_unconfigured_client(
    http_client: httpx.AsyncClient
) -> None:
    client = ClientSettings.from_env({"SERPER_API_KEY": "  "}).serper_client(http_client)

    assert client.configured is False


def test_client_settings_reject_a_non_numeric_serper_timeout() -> None:
    with pytest.raises(ValueError, match="SERPER_TIMEOUT"):
        ClientSettings.from_env({"SERPER_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    "header, expected",
    [("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), ("", None), ("soon", None), ("nan", None), (None, None)],
)
def test_parse_retry_after_accepts_seconds_and_rejects_junk(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_accepts_an_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after(header, now=now) == 30.0
