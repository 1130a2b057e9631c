"""A loopback web host for the page reader: pages, redirects and misbehaviour, scripted per path."""

from __future__ import annotations

import html

from devtools.fakes.scripting import FaultQueue
from devtools.fakes.server import FakeHTTPServer, Request, Response


def article_html(title: str, paragraphs: list[str]) -> str:
    """A page as sites build them: the article inside navigation, a header, scripts and a footer."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"""<!doctype html>
<html><head><title>{html.escape(title)}</title><style>body {{ color: black; }}</style>
<script>window.tracker = "do not read this script";</script></head>
<body>
<header><div class="logo">Example Site header banner text</div></header>
<nav><ul><li><a href="/">Home page link</a></li><li><a href="/about">About this site link</a></li></ul></nav>
<main><article><h1>{html.escape(title)}</h1>
{body}
<script>console.log("inline script inside the article");</script>
</article></main>
<aside>Related posts you might like in the sidebar</aside>
<footer>Copyright 2026 Example Site, all rights reserved.</footer>
</body></html>"""


class FakePages:
    """Answers GET /<path> with the response scripted for that path, 404 otherwise."""

    def __init__(self) -> None:
        self.server = FakeHTTPServer()
        self.faults = FaultQueue()
        self.responses: dict[str, Response] = {}
        self.server.route_prefix("GET", "/", self._serve)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.server.requests]

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def add(self, path: str, response: Response) -> str:
        self.responses[path] = response
        return self.url(path)

    def html(self, path: str, document: str, charset: str = "utf-8") -> str:
        return self.add(path, Response(200, document.encode(charset),
                                       {"content-type": f"text/html; charset={charset}"}))

    def article(self, path: str, title: str, paragraphs: list[str]) -> str:
        return self.html(path, article_html(title, paragraphs))

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add(path, Response(status, b"", {"location": location}))

    async def _serve(self, request: Request) -> Response:
        scripted = await self.faults.next()
        if scripted is not None:
            return scripted
        return self.responses.get(request.path) or Response(404, b"not found", {"content-type": "text/plain"})

    async def start(self) -> FakePages:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()
