"""Serper (google.serper.dev) client: web, news and shopping search as typed results."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from tools.errors import BadResponseError
from tools.http_retry import RetryPolicy, SleepFn, read_json
from tools.keyed_client import KeyedClient

SearchKind = Literal["web", "news", "shopping"]

DEFAULT_BASE_URL = "https://google.serper.dev"
KEY_ENV_VAR = "SERPER_API_KEY"
_MAX_LIMIT = 100

# endpoint path and the response key that holds its result list
_ENDPOINTS: dict[SearchKind, tuple[str, str]] = {
    "web": ("/search", "organic"),
    "news": ("/news", "news"),
    "shopping": ("/shopping", "shopping"),
}


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    position: int
    source: str | None = None
    date: str | None = None
    price: str | None = None
    kind: SearchKind = field(kw_only=True)


def _opt_str(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    # Serper sometimes sends numbers (prices, ratings); keep them as display text.
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _shopping_snippet(price: str | None, source: str | None, rating: str | None) -> str:
    parts = [p for p in (price, f"at {source}" if source else None) if p]
    text = " ".join(parts)
    if rating:
        text = f"{text}, rated {rating}" if text else f"rated {rating}"
    return text


def _parse_item(item: Any, index: int, kind: SearchKind, label: str) -> SearchResult:
    if not isinstance(item, dict):
        raise BadResponseError(f"{label} returned a result that is not an object")
    title, url = item.get("title"), item.get("link")
    if not isinstance(title, str) or not isinstance(url, str):
        raise BadResponseError(f"{label} returned a result without a string title and link")
    position = item.get("position")
    if not isinstance(position, int) or isinstance(position, bool):
        position = index + 1
    source, date, price = _opt_str(item, "source"), _opt_str(item, "date"), _opt_str(item, "price")
    snippet = item.get("snippet")
    if kind == "shopping":
        snippet = _shopping_snippet(price, source, _opt_str(item, "rating"))
    elif not isinstance(snippet, str):
        snippet = ""
    return SearchResult(title, url, snippet, position, source, date, price, kind=kind)


def parse_results(payload: Any, kind: SearchKind, limit: int, label: str) -> list[SearchResult]:
    """Turn a Serper body into results; a missing list means no results, a wrong type is an error."""
    if not isinstance(payload, dict):
        raise BadResponseError(f"{label} returned JSON that is not an object")
    items = payload.get(_ENDPOINTS[kind][1], [])
    if not isinstance(items, list):
        raise BadResponseError(f"{label} returned {_ENDPOINTS[kind][1]!r} that is not a list")
    return [_parse_item(item, i, kind, label) for i, item in enumerate(items[:limit])]


class SerperClient(KeyedClient):
    """Async Serper client on a caller-owned httpx.AsyncClient."""

    SERVICE = "Serper"
    KEY_ENV_VAR = KEY_ENV_VAR
    KEY_HEADER = "X-API-KEY"

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 15.0,
        max_retries: int = 3,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        self._http = http
        self._api_key = api_key or None
        self._base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout)
        self._policy = RetryPolicy(max_retries=max_retries, base_delay=backoff_base, max_delay=backoff_max)
        self._sleep = sleep


    async def search_web(self, query: str, limit: int = 10) -> list[SearchResult]:
        return await self._search("web", query, limit)

    async def search_news(self, query: str, limit: int = 10) -> list[SearchResult]:
        return await self._search("news", query, limit)

    async def search_shopping(self, query: str, limit: int = 10) -> list[SearchResult]:
        return await self._search("shopping", query, limit)

    async def _search(self, kind: SearchKind, query: str, limit: int) -> list[SearchResult]:
        if not query.strip():
            raise ValueError("query must not be empty")
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}, got {limit}")
        path = _ENDPOINTS[kind][0]
        label = f"Serper POST {path}"
        response = await self._send_keyed("POST", path, json={"q": query, "num": limit})
        return parse_results(read_json(response, label), kind, limit, label)
