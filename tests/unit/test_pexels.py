"""PexelsClient against the loopback Pexels fake: search, details, retries, errors, safe downloads."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from devtools.fakes.pexels import FAKE_PEXELS_KEY, JPEG_BYTES, FakeImage, FakePexels
from devtools.fakes.scripting import echo_headers, hang, junk, key_fragments, reset, status
from tools.client_settings import ClientSettings
from tools.errors import (
    BadResponseError,
    ImageRejectedError,
    ImageTooLargeError,
    NotConfiguredError,
    RateLimitedError,
    ToolError,
    UnsafeImageURLError,
    UnsupportedImageTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tools.pexels import PexelsClient, Photo

GUARD_SECONDS = 10
GENERATED_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|gif)$")


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
    fake: FakePexels,
    http: httpx.AsyncClient,
    sleep: SleepRecorder,
    *,
    api_key: str | None = FAKE_PEXELS_KEY,
    timeout: float = 5.0,
    max_retries: int = 3,
    max_image_bytes: int = 1024 * 1024,
    insecure_loopback: bool = True,
) -> PexelsClient:
    return PexelsClient(
        http,
        api_key,
        base_url=fake.api_url,
        timeout=timeout,
        max_retries=max_retries,
        max_image_bytes=max_image_bytes,
        allowed_image_hosts={"127.0.0.1"},
        allow_insecure_hosts={"127.0.0.1"} if insecure_loopback else None,
        sleep=sleep,
    )


async def files_under(root: Path) -> list[Path]:
    """Every file below root, hidden temp files included (listing off the event loop)."""
    return await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))


def image_requests(fake: FakePexels) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/img/")]


# --- search and details ---------------------------------------------------------------------


async def test_search_images_returns_typed_photos(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    photos = await client.search_images("laptop desk", limit=3)

    assert [p.id for p in photos] == [101, 102, 103]
    photo = photos[0]
    assert isinstance(photo, Photo)
    assert photo.url == "https://www.pexels.com/photo/laptop-on-desk-101/"
    assert photo.photographer == "Ana [Studio] 101"
    assert photo.photographer_url == "https://www.pexels.com/@ana-101"
    assert photo.alt == "Laptop on a wooden desk 101"
    assert (photo.width, photo.height, photo.avg_color) == (6000, 4000, "#7E7466")
    assert set(photo.src) == {"original", "large2x", "large", "medium", "small", "portrait", "landscape", "tiny"}
    assert photo.src["original"].endswith("/img/photos/101/pexels-photo-101.jpeg")


async def test_search_images_sends_key_and_query_parameters(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    await client.search_images("laptop desk", orientation="landscape", size="large", limit=4)

    [request] = fake_pexels.requests
    assert (request.method, request.path) == ("GET", "/v1/search")
    assert request.headers["authorization"] == FAKE_PEXELS_KEY
    assert request.query == {
        "query": ["laptop desk"], "per_page": ["4"], "orientation": ["landscape"], "size": ["large"]
    }


async def test_search_images_omits_unset_filters_and_defaults_to_five(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    photos = await client.search_images("laptop")

    assert len(photos) == 5
    assert fake_pexels.requests[0].query == {"query": ["laptop"], "per_page": ["5"]}


@pytest.mark.parametrize(
    "kwargs",
    [{"orientation": "diagonal"}, {"size": "huge"}, {"limit": 0}, {"limit": 81}, {"query": " "}],
)
async def test_search_images_rejects_invalid_arguments_without_a_request(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, kwargs: dict[str, object]
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)
    arguments: dict[str, object] = {"query": "laptop", **kwargs}

    with pytest.raises(ValueError):
        await client.search_images(**arguments)  # type: ignore[arg-type]

    assert fake_pexels.requests == []


async def test_get_photo_details_returns_the_photo(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    photo = await client.get_photo_details(104)

    assert photo.id == 104
    assert fake_pexels.requests[0].path == "/v1/photos/104"
    assert fake_pexels.requests[0].headers["authorization"] == FAKE_PEXELS_KEY


async def test_get_photo_details_of_unknown_photo_raises_upstream_error_404(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UpstreamError) as caught:
        await client.get_photo_details(999)

    assert caught.value.status_code == 404
    assert len(fake_pexels.requests) == 1


def test_credit_markdown_links_photographer_and_pexels_page() -> None:
    photo = Photo(
        id=1, url="https://www.pexels.com/photo/x-1/", photographer="Ana [Studio]",
        photographer_url="https://www.pexels.com/@ana", alt="", width=1, height=1, src={},
    )

    assert photo.credit_markdown == (
        r"Photo by [Ana \[Studio\]](https://www.pexels.com/@ana) on [Pexels](https://www.pexels.com/photo/x-1/)"
    )


# --- retries, timeouts, errors --------------------------------------------------------------


async def test_retries_after_429_honouring_retry_after(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(status(429, retry_after="3"))
    client = make_client(fake_pexels, http_client, sleeps)

    photos = await client.search_images("laptop")

    assert len(photos) == 5
    assert sleeps.waits == [3.0]


async def test_persistent_429_raises_rate_limited(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(status(429), status(429))
    client = make_client(fake_pexels, http_client, sleeps, max_retries=1)

    with pytest.raises(RateLimitedError) as caught:
        await client.search_images("laptop")

    assert caught.value.retry_after is None


async def test_retries_after_500_then_succeeds(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(status(500))
    client = make_client(fake_pexels, http_client, sleeps)

    photo = await client.get_photo_details(101)

    assert photo.id == 101
    assert len(sleeps.waits) == 1


async def test_persistent_500_raises_upstream_error_after_the_bound(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(*[status(502) for _ in range(5)])
    client = make_client(fake_pexels, http_client, sleeps, max_retries=2)

    with pytest.raises(UpstreamError) as caught:
        await client.search_images("laptop")

    assert caught.value.status_code == 502
    assert len(fake_pexels.requests) == 3


async def test_hanging_server_ends_at_the_timeout_with_upstream_timeout_error(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(hang())
    client = make_client(fake_pexels, http_client, sleeps, timeout=0.3, max_retries=0)

    with pytest.raises(UpstreamTimeoutError):
        await asyncio.wait_for(client.search_images("laptop"), GUARD_SECONDS)


async def test_retries_after_connection_reset(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(reset())
    client = make_client(fake_pexels, http_client, sleeps)

    assert len(await client.search_images("laptop")) == 5
    assert len(fake_pexels.requests) == 2


async def test_malformed_json_raises_bad_response_error(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    fake_pexels.faults.push(junk(b"<html>maintenance</html>"))
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(BadResponseError):
        await client.search_images("laptop")


@pytest.mark.parametrize(
    "payload",
    [
        {"page": 1},
        {"photos": {"id": 1}},
        {"photos": [{"id": "1", "url": "u", "photographer": "p", "photographer_url": "pu",
                     "width": 1, "height": 1, "src": {}}]},
        {"photos": [{"id": 1, "url": "u", "photographer": "p", "photographer_url": "pu",
                     "width": 1, "height": 1}]},
    ],
)
async def test_unexpected_shape_raises_bad_response_error(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, payload: object
) -> None:
    fake_pexels.faults.push(status(200, payload=payload))
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(BadResponseError):
        await client.search_images("laptop")


async def test_missing_key_raises_not_configured_before_any_request(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    client = make_client(fake_pexels, http_client, sleeps, api_key=None)

    assert client.configured is False
    with pytest.raises(NotConfiguredError, match="PEXELS_API_KEY"):
        await client.search_images("laptop")
    with pytest.raises(NotConfiguredError, match="PEXELS_API_KEY"):
        await client.get_photo_details(101)

    assert fake_pexels.requests == []


async def test_rejected_key_is_not_retried_and_never_appears_in_the_error(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    wrong_key = "wrong-pexels-key-3c90aa"
    client = make_client(fake_pexels, http_client, sleeps, api_key=wrong_key)

    with pytest.raises(UpstreamError) as caught:
        await client.search_images("laptop")

    assert caught.value.status_code == 401
    assert "rejected the API key" in str(caught.value) and "PEXELS_API_KEY" in str(caught.value)
    assert wrong_key not in str(caught.value)
    assert wrong_key not in repr(client)
    assert len(fake_pexels.requests) == 1


async def test_client_settings_read_key_base_url_timeout_and_image_cap(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient
) -> None:
    settings = ClientSettings.from_env({"PEXELS_API_KEY": FAKE_PEXELS_KEY, "PEXELS_BASE_URL": fake_pexels.api_url,
                                        "PEXELS_TIMEOUT": "4", "PEXELS_MAX_IMAGE_BYTES": "2048"})

    client = settings.pexels_client(http_client)

    assert client.configured
    assert (await client.get_photo_details(102)).id == 102


def test_client_settings_reject_a_bad_image_cap() -> None:
    with pytest.raises(ValueError, match="PEXELS_MAX_IMAGE_BYTES"):
        ClientSettings.from_env({"PEXELS_MAX_IMAGE_BYTES": "-1"})


# --- download_image -------------------------------------------------------------------------


async def test_download_image_writes_the_bytes_under_a_generated_name(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)
    photo = await client.get_photo_details(101)
    dest = tmp_path / "images" / "nested"

    path = await client.download_image(photo.src["large"], dest)

    assert path.parent == dest
    assert GENERATED_NAME.match(path.name) and path.suffix == ".jpg"
    assert await asyncio.to_thread(path.read_bytes) == JPEG_BYTES
    assert await files_under(tmp_path) == [path]


async def test_download_image_does_not_send_the_api_key(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    await client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path)

    [request] = fake_pexels.requests
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    "content_type, suffix",
    [("image/png", ".png"), ("image/webp", ".webp"), ("image/gif", ".gif"), ("IMAGE/JPEG; charset=binary", ".jpg")],
)
async def test_download_image_names_the_file_from_the_content_type(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path,
    content_type: str, suffix: str,
) -> None:
    fake_pexels.images["/img/photo.exe"] = FakeImage(content_type=content_type)
    client = make_client(fake_pexels, http_client, sleeps)

    path = await client.download_image(fake_pexels.image_url("/img/photo.exe"), tmp_path)

    assert path.suffix == suffix


async def test_download_image_streams_a_body_without_content_length(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    body = bytes(range(256)) * 2048  # 512 KiB: more than one write batch
    fake_pexels.images["/img/big.jpeg"] = FakeImage(body=body, stream=True, chunk_size=8192)
    client = make_client(fake_pexels, http_client, sleeps)

    path = await client.download_image(fake_pexels.image_url("/img/big.jpeg"), tmp_path)

    assert await asyncio.to_thread(path.read_bytes) == body


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/photo.jpeg",
        "https://images.pexels.com.evil.example.com/photo.jpeg",
        "https://user:secret@images.pexels.com/photo.jpeg",
        "http://images.pexels.com/photo.jpeg",
        "ftp://images.pexels.com/photo.jpeg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "/img/relative.jpeg",
        "https://[::1/broken",
    ],
)
async def test_download_image_refuses_urls_off_the_allow_list(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path, url: str
) -> None:
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UnsafeImageURLError) as caught:
        await client.download_image(url, tmp_path)

    assert isinstance(caught.value, ValueError)
    assert await files_under(tmp_path) == []


async def test_download_image_refuses_plain_http_unless_the_host_is_allow_listed_as_insecure(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    client = make_client(fake_pexels, http_client, sleeps, insecure_loopback=False)

    with pytest.raises(UnsafeImageURLError, match="https"):
        await client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path)

    assert fake_pexels.requests == []


async def test_download_image_refuses_loopback_by_default(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    client = PexelsClient(http_client, FAKE_PEXELS_KEY, base_url=fake_pexels.api_url)

    with pytest.raises(UnsafeImageURLError):
        await client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path)

    assert fake_pexels.requests == []


async def test_download_image_rejects_a_declared_length_over_the_cap(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.images["/img/huge.jpeg"] = FakeImage(body=b"\xff" * 5000)
    client = make_client(fake_pexels, http_client, sleeps, max_image_bytes=4096)

    with pytest.raises(ImageTooLargeError, match="declares 5000 bytes"):
        await client.download_image(fake_pexels.image_url("/img/huge.jpeg"), tmp_path)

    assert await files_under(tmp_path) == []


async def test_download_image_aborts_a_stream_without_length_once_over_the_cap(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.images["/img/sneaky.jpeg"] = FakeImage(body=b"\xff" * 5000, stream=True, chunk_size=1000)
    client = make_client(fake_pexels, http_client, sleeps, max_image_bytes=4096)

    with pytest.raises(ImageTooLargeError, match="while streaming"):
        await client.download_image(fake_pexels.image_url("/img/sneaky.jpeg"), tmp_path)

    assert await files_under(tmp_path) == []


async def test_download_image_aborts_an_endless_stream(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.images["/img/endless.jpeg"] = FakeImage(body=b"\xff" * 65536, endless=True)
    client = make_client(fake_pexels, http_client, sleeps, max_image_bytes=1024 * 1024)

    with pytest.raises(ImageTooLargeError):
        await asyncio.wait_for(
            client.download_image(fake_pexels.image_url("/img/endless.jpeg"), tmp_path), GUARD_SECONDS
        )

    assert await files_under(tmp_path) == []


@pytest.mark.parametrize("content_type", ["text/html", "image/svg+xml", "application/octet-stream", None])
async def test_download_image_refuses_a_non_raster_content_type(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path,
    content_type: str | None,
) -> None:
    fake_pexels.images["/img/page.jpeg"] = FakeImage(body=b"<html><script>x</script></html>", content_type=content_type)
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UnsupportedImageTypeError):
        await client.download_image(fake_pexels.image_url("/img/page.jpeg"), tmp_path)

    assert await files_under(tmp_path) == []


async def test_download_image_ignores_path_tricks_in_url_and_content_disposition(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    tricky = "/img/..%2F..%2F..%2Fetc%2Fpasswd"
    fake_pexels.images[tricky] = FakeImage(headers={"content-disposition": 'attachment; filename="../../evil.sh"'})
    client = make_client(fake_pexels, http_client, sleeps)
    dest = tmp_path / "dest"

    path = await client.download_image(fake_pexels.image_url(tricky), dest)

    assert path.parent == dest
    assert GENERATED_NAME.match(path.name)
    assert await files_under(tmp_path) == [path]


async def test_download_image_follows_a_redirect_on_an_allowed_host(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.redirects["/img/old.jpeg"] = "/img/new.jpeg"
    client = make_client(fake_pexels, http_client, sleeps)

    path = await client.download_image(fake_pexels.image_url("/img/old.jpeg"), tmp_path)

    assert await asyncio.to_thread(path.read_bytes) == JPEG_BYTES
    assert image_requests(fake_pexels) == ["/img/old.jpeg", "/img/new.jpeg"]


@pytest.mark.parametrize(
    "location",
    ["https://evil.example.com/steal.jpeg", "http://localhost:1/img/a.jpeg", "file:///etc/passwd"],
)
async def test_download_image_refuses_a_redirect_off_the_allow_list(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path, location: str
) -> None:
    fake_pexels.redirects["/img/jump.jpeg"] = location
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UnsafeImageURLError):
        await client.download_image(fake_pexels.image_url("/img/jump.jpeg"), tmp_path)

    assert image_requests(fake_pexels) == ["/img/jump.jpeg"]
    assert await files_under(tmp_path) == []


async def test_download_image_gives_up_on_a_redirect_loop(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.redirects["/img/a.jpeg"] = "/img/b.jpeg"
    fake_pexels.redirects["/img/b.jpeg"] = "/img/a.jpeg"
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UpstreamError, match="redirects"):
        await client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path)


async def test_download_image_retries_a_500_then_stores_the_image(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.faults.push(status(500))
    client = make_client(fake_pexels, http_client, sleeps)

    path = await client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path)

    assert await files_under(tmp_path) == [path]
    assert len(sleeps.waits) == 1


async def test_download_image_times_out_on_a_hanging_image_host(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.faults.push(hang())
    client = make_client(fake_pexels, http_client, sleeps, timeout=0.3, max_retries=0)

    with pytest.raises(UpstreamTimeoutError):
        await asyncio.wait_for(client.download_image(fake_pexels.image_url("/img/a.jpeg"), tmp_path), GUARD_SECONDS)

    assert await files_under(tmp_path) == []


async def test_download_image_of_an_empty_body_is_rejected(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.images["/img/empty.jpeg"] = FakeImage(body=b"")
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(ImageRejectedError):
        await client.download_image(fake_pexels.image_url("/img/empty.jpeg"), tmp_path)

    assert await files_under(tmp_path) == []


async def test_download_image_cancelled_mid_stream_leaves_no_partial_file(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, tmp_path: Path
) -> None:
    fake_pexels.images["/img/slow.jpeg"] = FakeImage(body=b"\xff" * 4096, endless=True, chunk_size=4096)
    client = make_client(fake_pexels, http_client, sleeps, max_image_bytes=1024 * 1024 * 1024)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.download_image(fake_pexels.image_url("/img/slow.jpeg"), tmp_path), 0.3)

    assert await files_under(tmp_path) == []


def test_every_client_error_is_a_tool_error() -> None:
    for error in (UnsafeImageURLError, ImageTooLargeError, UnsupportedImageTypeError, UpstreamTimeoutError,
                  RateLimitedError, BadResponseError, NotConfiguredError):
        assert issubclass(error, ToolError)


@pytest.mark.parametrize("value_at", [150, 190, 195, 199])
async def test_a_key_echoed_across_the_quoted_part_of_a_4xx_leaves_no_piece_of_itself(
    fake_pexels: FakePexels, http_client: httpx.AsyncClient, sleeps: SleepRecorder, value_at: int
) -> None:
    fake_pexels.faults.push(echo_headers(400, "Authorization", value_at))
    client = make_client(fake_pexels, http_client, sleeps)

    with pytest.raises(UpstreamError) as caught:
        await client.search_images("mountains")

    message = str(caught.value)
    assert "request rejected" in message
    assert key_fragments(message, FAKE_PEXELS_KEY) == []
