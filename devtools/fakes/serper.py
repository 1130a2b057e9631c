"""A loopback fake of google.serper.dev: /search, /news and /shopping with Serper's real shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devtools.fakes.scripting import FaultQueue
from devtools.fakes.server import FakeHTTPServer, Handler, Request, Response

FAKE_SERPER_KEY = "serper-test-key-5f2c9e"


def default_web() -> list[dict[str, Any]]:
    return [
        {
            "title": "Async IO in Python: A Complete Walkthrough",
            "link": "https://realpython.com/async-io-python/",
            "snippet": "This tutorial will give you a firm grasp of Python's approach to async IO.",
            "position": 1,
        },
        {
            "title": "asyncio — Asynchronous I/O",
            "link": "https://docs.python.org/3/library/asyncio.html",
            "snippet": "asyncio is a library to write concurrent code using the async/await syntax.",
            "date": "Jan 5, 2025",
            "position": 2,
            "sitelinks": [
                {"title": "Coroutines and Tasks", "link": "https://docs.python.org/3/library/asyncio-task.html"},
            ],
        },
        {
            "title": "Python Concurrency: asyncio vs threads",
            "link": "https://example.org/concurrency",
            "snippet": "When to use which.",
            "position": 3,
        },
    ]


def default_news() -> list[dict[str, Any]]:
    return [
        {
            "title": "Python 3.14 ships free-threaded build",
            "link": "https://news.example.com/python-314",
            "snippet": "The new release makes the GIL optional.",
            "date": "2 days ago",
            "source": "Example News",
            "imageUrl": "https://news.example.com/thumb.jpg",
            "position": 1,
        },
        {
            "title": "Async frameworks compared",
            "link": "https://dev.example.net/async-frameworks",
            "snippet": "Litestar, FastAPI and friends.",
            "date": "1 week ago",
            "source": "Dev Weekly",
        },
    ]


def default_shopping() -> list[dict[str, Any]]:
    return [
        {
            "title": "Fluent Python, 2nd Edition",
            "source": "Bookshop",
            "link": "https://shop.example.com/fluent-python",
            "price": "$49.99",
            "imageUrl": "https://shop.example.com/fp.jpg",
            "rating": 4.8,
            "ratingCount": 1200,
            "productId": "123",
            "position": 1,
        },
        {
            "title": "Python Concurrency with asyncio",
            "source": "Books & Co",
            "link": "https://books.example.com/asyncio",
            "price": "$39.00",
            "position": 2,
        },
    ]


class FakeSerper:
    """Scriptable Serper: canned results per endpoint, queued faults, latency, recorded requests."""

    def __init__(self, api_key: str = FAKE_SERPER_KEY) -> None:
        self.server = FakeHTTPServer()
        self.api_key = api_key
        self.faults = FaultQueue()
        self.web: list[dict[str, Any]] = default_web()
        self.news: list[dict[str, Any]] = default_news()
        self.shopping: list[dict[str, Any]] = default_shopping()
        # Answers for one (search type, query) pair, before the lists above: "search", "news", "shopping".
        self.per_query: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # Real Serper trims to `num`; turning this off lets tests see the client truncate too.
        self.honour_num = True
        self.server.route("POST", "/search", self._endpoint("search", "organic", lambda: self.web))
        self.server.route("POST", "/news", self._endpoint("news", "news", lambda: self.news))
        self.server.route("POST", "/shopping", self._endpoint("shopping", "shopping", lambda: self.shopping))

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def queries(self, path: str) -> list[str]:
        """The `q` of every request to /search, /news or /shopping, in arrival order."""
        return [r.json()["q"] for r in self.server.requests if r.path == path]

    async def start(self) -> FakeSerper:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    def _endpoint(self, search_type: str, key: str, results: Callable[[], list[dict[str, Any]]]) -> Handler:
        async def handle(request: Request) -> Response:
            scripted = await self.faults.next(request)
            if scripted is not None:
                return scripted
            if request.headers.get("x-api-key") != self.api_key:
                return Response.json({"message": "Unauthorized.", "statusCode": 403}, status=403)
            body = request.json()
            if not isinstance(body, dict) or not body.get("q"):
                return Response.json({"message": "Missing query parameter", "statusCode": 400}, status=400)
            items = list(self.per_query.get((search_type, body["q"]), results()))
            num = body.get("num", 10)
            if self.honour_num and isinstance(num, int):
                items = items[:num]
            return Response.json({
                "searchParameters": {"q": body["q"], "type": search_type, "num": num, "engine": "google"},
                key: items,
                "credits": 1,
            })

        return handle
