"""A loopback fake of the Pexels API (/v1/search, /v1/photos/{id}) plus an image host (/img/...).

Image replies are scriptable per path: content type, size, chunked streaming without a length,
an endless body, extra headers (e.g. a hostile Content-Disposition) and redirects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from devtools.fakes.scripting import FaultQueue
from devtools.fakes.server import FakeHTTPServer, Request, Response

FAKE_PEXELS_KEY = "pexels-test-key-8a41d7"

# Enough of a JPEG (SOI/APP0 ... EOI) to look like one; the client never decodes it.
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"


@dataclass
class FakeImage:
    body: bytes = JPEG_BYTES
    content_type: str | None = "image/jpeg"
    # Chunked transfer without Content-Length, as a server that omits (or would lie about) size.
    stream: bool = False
    # Keep sending chunks forever: only a client-side cap can end the download.
    endless: bool = False
    chunk_size: int = 16 * 1024
    headers: dict[str, str] = field(default_factory=dict)


def photo_payload(photo_id: int, base_url: str) -> dict[str, Any]:
    """One photo in Pexels' real shape, its sizes served by this fake's image host."""
    image = f"{base_url}/img/photos/{photo_id}/pexels-photo-{photo_id}.jpeg"
    return {
        "id": photo_id,
        "width": 6000,
        "height": 4000,
        "url": f"https://www.pexels.com/photo/laptop-on-desk-{photo_id}/",
        "photographer": f"Ana [Studio] {photo_id}",
        "photographer_url": f"https://www.pexels.com/@ana-{photo_id}",
        "photographer_id": 1000 + photo_id,
        "avg_color": "#7E7466",
        "src": {
            "original": image,
            "large2x": f"{image}?auto=compress&cs=tinysrgb&dpr=2&h=650&w=940",
            "large": f"{image}?auto=compress&cs=tinysrgb&h=650&w=940",
            "medium": f"{image}?auto=compress&cs=tinysrgb&h=350",
            "small": f"{image}?auto=compress&cs=tinysrgb&h=130",
            "portrait": f"{image}?auto=compress&cs=tinysrgb&fit=crop&h=1200&w=800",
            "landscape": f"{image}?auto=compress&cs=tinysrgb&fit=crop&h=627&w=1200",
            "tiny": f"{image}?auto=compress&cs=tinysrgb&dpr=1&fit=crop&h=200&w=280",
        },
        "liked": False,
        "alt": f"Laptop on a wooden desk {photo_id}",
    }


async def _chunks(image: FakeImage) -> AsyncIterator[bytes]:
    while True:
        for start in range(0, len(image.body), image.chunk_size):
            yield image.body[start:start + image.chunk_size]
            # Give the loop a turn so an endless body cannot starve the client that must abort it.
            await asyncio.sleep(0)
        if not image.endless:
            return


class FakePexels:
    """Scriptable Pexels: canned photos, queued faults, latency, image host, recorded requests."""

    def __init__(self, api_key: str = FAKE_PEXELS_KEY) -> None:
        self.server = FakeHTTPServer()
        self.api_key = api_key
        self.faults = FaultQueue()
        self.photos: list[dict[str, Any]] = []
        self.images: dict[str, FakeImage] = {}
        self.default_image = FakeImage()
        self.redirects: dict[str, str] = {}
        self.server.route("GET", "/v1/search", self._search)
        self.server.route_prefix("GET", "/v1/photos/", self._photo)
        self.server.route_prefix("GET", "/img/", self._image)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def api_url(self) -> str:
        return f"{self.server.base_url}/v1"

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def image_url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    async def start(self) -> FakePexels:
        await self.server.start()
        self.photos = [photo_payload(i, self.base_url) for i in (101, 102, 103, 104, 105, 106)]
        return self

    async def stop(self) -> None:
        await self.server.stop()

    def _unauthorised(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != self.api_key:
            return Response.json({"status": 401, "code": "Unauthorized"}, status=401)
        return None

    async def _search(self, request: Request) -> Response:
        scripted = await self.faults.next(request)
        if scripted is not None:
            return scripted
        denied = self._unauthorised(request)
        if denied is not None:
            return denied
        if not request.arg("query"):
            return Response.json({"status": 400, "code": "Bad Request"}, status=400)
        per_page = int(request.arg("per_page", "15") or 15)
        return Response.json({
            "total_results": len(self.photos),
            "page": 1,
            "per_page": per_page,
            "photos": self.photos[:per_page],
            "next_page": f"{self.api_url}/search/?page=2&per_page={per_page}&query={request.arg('query')}",
        })

    async def _photo(self, request: Request) -> Response:
        scripted = await self.faults.next(request)
        if scripted is not None:
            return scripted
        denied = self._unauthorised(request)
        if denied is not None:
            return denied
        wanted = request.path.removeprefix("/v1/photos/")
        for photo in self.photos:
            if str(photo["id"]) == wanted:
                return Response.json(photo)
        return Response.json({"status": 404, "code": "Not Found"}, status=404)

    async def _image(self, request: Request) -> Response:
        scripted = await self.faults.next(request)
        if scripted is not None:
            return scripted
        if request.path in self.redirects:
            return Response(302, b"", {"location": self.redirects[request.path]})
        image = self.images.get(request.path, self.default_image)
        headers = dict(image.headers)
        if image.content_type is not None:
            headers["content-type"] = image.content_type
        body: bytes | AsyncIterator[bytes] = _chunks(image) if image.stream or image.endless else image.body
        return Response(200, body, headers)
