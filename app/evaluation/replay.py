"""Frozen research, served over loopback HTTP in Serper's and Pexels' own protocols.

The graph's real Serper and Pexels clients talk to this server during an eval, and so does
ReplayPageReader in place of the live page reader, so a run is reproducible offline whatever
queries the model plans. Each request of the set gets an API
key naming its fixture; the server answers every query from that fixture, best term overlap
first, and records what was asked (the report's routing and research figures come from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, Request, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromQuery, JSONBody

from app.evaluation.dataset import Fixture
from tools.errors import BadResponseError, PageRejectedError
from tools.http_retry import RetryPolicy, read_json, send_with_retry
from tools.pages import DEFAULT_MAX_CHARS, Page, plain_text

KEY_PREFIX = "replay:"
_TERMS = re.compile(r"[a-z0-9]+")
_RESULT_KEYS = {"search": ("web", "organic"), "news": ("news", "news"), "shopping": ("shopping", "shopping")}


def _terms(text: str) -> set[str]:
    return {t for t in _TERMS.findall(text.lower()) if len(t) > 2}


def rank(items: list[dict[str, Any]], query: str, limit: int) -> list[dict[str, Any]]:
    """Items by how many query terms their title and snippet share, ties in fixture order."""
    wanted = _terms(query)
    scored = [(-len(wanted & _terms(f"{i.get('title', '')} {i.get('snippet', '')}")), index, i)
              for index, i in enumerate(items)]
    return [dict(item, position=rank + 1) for rank, (_, _, item) in enumerate(sorted(scored)[:limit])]


@dataclass
class SearchLog:
    """What each fixture's requests asked, in order: (endpoint, query)."""

    queries: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    pages: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


class _EmbeddedUvicorn(uvicorn.Server):
    """A uvicorn server started inside another command: Ctrl-C belongs to that command."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ReplayServer:
    """Serper (/search, /news, /shopping), Pexels (/v1/search) and page texts (/page) on 127.0.0.1."""

    def __init__(self, fixtures: dict[str, Fixture], photos: list[dict[str, Any]]) -> None:
        self.fixtures = fixtures
        self.photos = photos
        self.log = SearchLog()
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pexels_url(self) -> str:
        return f"{self.base_url}/v1"

    @staticmethod
    def key_for(fixture: str) -> str:
        return KEY_PREFIX + fixture

    def _fixture(self, key: str | None) -> tuple[str, Fixture]:
        """(the key, which the log files under, and the fixture it names: `replay:<fixture>#<caller>`)."""
        if not key or not key.startswith(KEY_PREFIX):
            raise HTTPException(status_code=403, detail="Unauthorized.")
        name = key.removeprefix(KEY_PREFIX).partition("#")[0]
        return key, self.fixtures.get(name) or Fixture()

    def app(self) -> Litestar:
        replay = self

        def search_handler(endpoint: str) -> Any:
            @post(f"/{endpoint}", status_code=200, name=f"serper-{endpoint}")
            async def handle(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
                name, fixture = replay._fixture(request.headers.get("x-api-key"))
                query = str(data.get("q") or "")
                if not query:
                    raise HTTPException(status_code=400, detail="Missing query parameter")
                requested = data.get("num")
                num = requested if isinstance(requested, int) else 10
                replay.log.queries[name].append((endpoint, query))
                attribute, key = _RESULT_KEYS[endpoint]
                items = rank(getattr(fixture, attribute), query, num)
                return {"searchParameters": {"q": query, "type": endpoint, "num": num, "engine": "google"},
                        key: items, "credits": 1}

            return handle

        @get("/v1/search", name="pexels-search")
        async def photos(request: Request[Any, Any, Any], per_page: FromQuery[int] = 5) -> dict[str, Any]:
            if not request.headers.get("authorization"):
                raise HTTPException(status_code=401, detail="Unauthorized")
            chosen = replay.photos[:per_page]
            return {"page": 1, "per_page": per_page, "photos": chosen, "total_results": len(chosen)}

        @get("/page", name="page-text")
        async def page(request: Request[Any, Any, Any], url: FromQuery[str]) -> dict[str, Any]:
            name, fixture = replay._fixture(request.headers.get("x-api-key"))
            replay.log.pages[name].append(url)
            text = fixture.pages.get(url)
            if text is None:
                raise HTTPException(status_code=404, detail="no page text frozen for this URL")
            return {"url": url, "text": text}

        handlers = [search_handler(e) for e in _RESULT_KEYS] + [photos, page]
        return Litestar(route_handlers=handlers, openapi_config=None, logging_config=None)

    async def start(self) -> ReplayServer:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the replay server stopped before it started")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ReplayPageReader:
    """The research's page reader during an eval (a tools.pages.PageSource): the page texts
    frozen in the request's fixture, from the replay server's GET /page."""

    def __init__(self, http: httpx.AsyncClient, key: str, base_url: str, timeout: float = 10.0,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self._http = http
        self._key = key
        self._url = base_url.rstrip("/") + "/page"
        self._timeout = httpx.Timeout(timeout)
        self._max_chars = max_chars

    def __repr__(self) -> str:
        return f"ReplayPageReader(url={self._url!r})"

    async def read(self, url: str) -> Page:
        label = "replay GET /page"
        # No retries: the replay server is in this process; a URL without a frozen page is a 404.
        response = await send_with_retry(
            self._http, "GET", self._url, service="replay pages", timeout=self._timeout,
            policy=RetryPolicy(max_retries=0), headers={"X-API-KEY": self._key, "Accept": "application/json"},
            params={"url": url}, secrets=(self._key,),
        )
        payload = read_json(response, label)
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise BadResponseError(f"{label} returned no page text")
        readable = plain_text(text, self._max_chars)
        if not readable:
            raise PageRejectedError("page has no readable text")
        return Page(url=url, title="", text=readable)
