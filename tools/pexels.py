"""Pexels client: photo search, photo details, and a hardened image download."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from tools.checked_urls import check_https_url, follow_checked_redirects, normalise_hosts
from tools.errors import (
    BadResponseError,
    ImageRejectedError,
    ImageTooLargeError,
    UnsafeImageURLError,
    UnsupportedImageTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tools.http_retry import RetryPolicy, SleepFn, read_json, send_with_retry
from tools.keyed_client import KeyedClient

DEFAULT_BASE_URL = "https://api.pexels.com/v1"
DEFAULT_IMAGE_HOSTS = frozenset({"images.pexels.com"})
KEY_ENV_VAR = "PEXELS_API_KEY"
ORIENTATIONS = frozenset({"landscape", "portrait", "square"})
SIZES = frozenset({"large", "medium", "small"})
_MAX_PER_PAGE = 80
_MAX_REDIRECTS = 3
_WRITE_BATCH_BYTES = 256 * 1024

# A whitelist rather than "image/*": SVG is an image type that can carry script, and the
# extension must come from us, never from the URL or the server's headers.
_IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def _escape_markdown_text(text: str) -> str:
    # A photographer name with brackets would otherwise break the link syntax.
    for char in ("\\", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


@dataclass(frozen=True)
class Photo:
    id: int
    url: str
    photographer: str
    photographer_url: str
    alt: str
    width: int
    height: int
    src: dict[str, str] = field(hash=False)
    avg_color: str | None = None

    @property
    def credit_markdown(self) -> str:
        """The attribution Pexels asks for, linked to the photographer and the photo page."""
        name = _escape_markdown_text(self.photographer)
        return f"Photo by [{name}]({self.photographer_url}) on [Pexels]({self.url})"


def _require(item: dict[str, Any], key: str, kind: type, label: str) -> Any:
    value = item.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadResponseError(f"{label} returned a photo whose {key!r} is missing or not a {kind.__name__}")
    return value


def parse_photo(item: Any, label: str) -> Photo:
    if not isinstance(item, dict):
        raise BadResponseError(f"{label} returned a photo that is not an object")
    src = item.get("src")
    if not isinstance(src, dict):
        raise BadResponseError(f"{label} returned a photo without a 'src' object")
    alt = item.get("alt")
    avg_color = item.get("avg_color")
    return Photo(
        id=_require(item, "id", int, label),
        url=_require(item, "url", str, label),
        photographer=_require(item, "photographer", str, label),
        photographer_url=_require(item, "photographer_url", str, label),
        alt=alt if isinstance(alt, str) else "",
        width=_require(item, "width", int, label),
        height=_require(item, "height", int, label),
        src={k: v for k, v in src.items() if isinstance(k, str) and isinstance(v, str)},
        avg_color=avg_color if isinstance(avg_color, str) else None,
    )


def _open_temp(dest_dir: Path) -> tuple[BinaryIO, Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=dest_dir)
    return os.fdopen(fd, "wb"), Path(name)


def _commit(handle: BinaryIO, tmp: Path, final: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(tmp, final)


def _discard(handle: BinaryIO, tmp: Path) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


class PexelsClient(KeyedClient):
    """Async Pexels client on a caller-owned httpx.AsyncClient."""

    SERVICE = "Pexels"
    KEY_ENV_VAR = KEY_ENV_VAR
    KEY_HEADER = "Authorization"

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 15.0,
        max_retries: int = 3,
        max_image_bytes: int = 10 * 1024 * 1024,
        allowed_image_hosts: Iterable[str] | None = None,
        *,
        allow_insecure_hosts: Iterable[str] | None = None,
        download_timeout: float = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        """allowed_image_hosts adds to images.pexels.com. allow_insecure_hosts is for tests only:
        those hosts (which must also be allowed) may be fetched over plain http."""
        if max_image_bytes <= 0:
            raise ValueError("max_image_bytes must be positive")
        self._http = http
        self._api_key = api_key or None
        self._base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout)
        self._policy = RetryPolicy(max_retries=max_retries, base_delay=backoff_base, max_delay=backoff_max)
        self._max_image_bytes = max_image_bytes
        self._image_hosts = DEFAULT_IMAGE_HOSTS | normalise_hosts(allowed_image_hosts)
        self._insecure_hosts = normalise_hosts(allow_insecure_hosts)
        self._download_timeout = download_timeout
        self._sleep = sleep


    async def search_images(
        self,
        query: str,
        orientation: str | None = None,
        size: str | None = None,
        limit: int = 5,
    ) -> list[Photo]:
        if not query.strip():
            raise ValueError("query must not be empty")
        if orientation is not None and orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {sorted(ORIENTATIONS)}, got {orientation!r}")
        if size is not None and size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
        if not 1 <= limit <= _MAX_PER_PAGE:
            raise ValueError(f"limit must be between 1 and {_MAX_PER_PAGE}, got {limit}")
        params: dict[str, str | int] = {"query": query, "per_page": limit}
        if orientation is not None:
            params["orientation"] = orientation
        if size is not None:
            params["size"] = size
        label = "Pexels GET /search"
        payload = await self._get_json("/search", params, label)
        if not isinstance(payload, dict) or not isinstance(payload.get("photos"), list):
            raise BadResponseError(f"{label} returned JSON without a 'photos' list")
        return [parse_photo(item, label) for item in payload["photos"][:limit]]

    async def get_photo_details(self, photo_id: int) -> Photo:
        if isinstance(photo_id, bool) or not isinstance(photo_id, int) or photo_id <= 0:
            raise ValueError(f"photo_id must be a positive integer, got {photo_id!r}")
        label = "Pexels GET /photos/{id}"
        return parse_photo(await self._get_json(f"/photos/{photo_id}", None, label), label)

    async def _get_json(self, path: str, params: dict[str, str | int] | None, label: str) -> Any:
        response = await self._send_keyed("GET", path, params=params)
        return read_json(response, label)

    def check_image_url(self, url: str) -> httpx.URL:
        """Accept only https URLs on an allowed image host (plain http only for test hosts)."""
        parsed, host = check_https_url(url, what="image", refusal=UnsafeImageURLError,
                                       insecure_hosts=self._insecure_hosts)
        if host not in self._image_hosts:
            raise UnsafeImageURLError(f"image host {host!r} is not an allowed Pexels image host")
        return parsed

    async def download_image(self, url: str, dest_dir: str | os.PathLike[str]) -> Path:
        """Download an image into dest_dir under a generated name; returns the file's path.

        No API key is sent: image hosts do not need it, and a redirect must never carry it off.
        """
        target = self.check_image_url(url)
        dest = Path(dest_dir)

        async def store(response: httpx.Response, _target: httpx.URL) -> Path:
            return await self._store(response, dest)

        try:
            async with asyncio.timeout(self._download_timeout):
                return await follow_checked_redirects(target, send=self._send_image_request,
                                                      check=self.check_image_url, handle=store,
                                                      what="image download", max_redirects=_MAX_REDIRECTS)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"image download did not finish within {self._download_timeout:g}s"
            ) from None

    async def _send_image_request(self, target: httpx.URL) -> httpx.Response:
        """One hop of an image download, streamed."""
        return await send_with_retry(
            self._http,
            "GET",
            str(target),
            service="Pexels image",
            timeout=self._timeout,
            policy=self._policy,
            headers={"Accept": ", ".join(_IMAGE_EXTENSIONS)},
            stream=True,
            # Each hop is re-validated (follow_checked_redirects) instead of trusting the server's Location.
            follow_redirects=False,
            sleep=self._sleep,
        )

    async def _store(self, response: httpx.Response, dest: Path) -> Path:
        if response.status_code != 200:
            raise UpstreamError(f"image server answered HTTP {response.status_code}", response.status_code)
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        extension = _IMAGE_EXTENSIONS.get(media_type)
        if extension is None:
            raise UnsupportedImageTypeError(f"refusing image with Content-Type {media_type or 'none'!r}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_image_bytes:
            raise ImageTooLargeError(
                f"image declares {int(declared)} bytes, over the {self._max_image_bytes}-byte limit"
            )
        handle, tmp = await asyncio.to_thread(_open_temp, dest)
        try:
            final = dest / f"{uuid.uuid4().hex}{extension}"
            await self._stream_into(response, handle)
            await asyncio.to_thread(_commit, handle, tmp, final)
            return final
        except BaseException:
            # Shielded so that a second cancellation cannot leave the partial file behind.
            await asyncio.shield(asyncio.to_thread(_discard, handle, tmp))
            raise

    async def _stream_into(self, response: httpx.Response, handle: BinaryIO) -> None:
        total = 0
        pending = bytearray()
        try:
            # aiter_bytes yields decoded bytes, so the cap also bounds a compressed bomb.
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self._max_image_bytes:
                    raise ImageTooLargeError(f"image exceeded the {self._max_image_bytes}-byte limit while streaming")
                pending += chunk
                if len(pending) >= _WRITE_BATCH_BYTES:
                    await asyncio.to_thread(handle.write, bytes(pending))
                    pending.clear()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"image download stalled ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"image download failed: {type(exc).__name__}: {exc}") from exc
        if pending:
            await asyncio.to_thread(handle.write, bytes(pending))
        if total == 0:
            raise ImageRejectedError("image server sent an empty body")
