"""The API docs under /schema work offline: the pages and every file they load come from the
service itself, with no token, and nothing they reference points at another host."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.integration.test_task_api import api  # noqa: F401 - the app in this loop

# Every URL a page loads by itself: src and href attributes, and url(...) in its styles.
_PAGE_URLS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_CSS_URLS = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
_CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def off_host(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme != "data") or url.startswith("//")


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/docs"])
async def test_the_docs_page_and_every_asset_it_references_come_from_the_app(
        api: httpx.AsyncClient, page: str) -> None:  # noqa: F811
    api.headers.pop("Authorization")  # the docs are public
    response = await api.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    urls = _PAGE_URLS.findall(html)

    assert {urlsplit(u).path.rsplit("/", 1)[-1] for u in urls} >= {
        "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"}
    assert not [u for u in urls if off_host(u)], urls
    for url in urls:
        asset = await api.get(urljoin(f"http://draftloop.test{page}", url))
        assert asset.status_code == 200, (url, asset.status_code)
        assert asset.content, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert _CONTENT_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
        if suffix == ".css":
            assert not [u for u in _CSS_URLS.findall(asset.text) if off_host(u)], url


async def test_the_openapi_schema_is_served_beside_the_docs(api: httpx.AsyncClient) -> None:  # noqa: F811
    api.headers.pop("Authorization")
    schema = (await api.get("/schema/openapi.json")).json()
    assert "/api/tasks" in schema["paths"]
    # The UI's files are the service's own, not API routes.
    assert not [path for path in schema["paths"] if path.startswith("/schema")]
    assert (await api.get("/schema/openapi.yaml")).status_code == 200


async def test_openapi_json_and_docs_answer_where_langgraph_api_serves_them(api: httpx.AsyncClient) -> None:  # noqa: F811
    api.headers.pop("Authorization")  # public, like /schema
    alias = await api.get("/openapi.json")
    assert alias.status_code == 200 and alias.headers["content-type"].startswith("application/json")
    assert alias.json() == (await api.get("/schema/openapi.json")).json()
    assert "/assistants/{assistant_id}/versions" in alias.json()["paths"]
    docs = await api.get("/docs")
    # The page runs Swagger UI's inline start-up script, which the API's own policy forbids.
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]


async def test_a_missing_asset_is_a_404_not_a_500(api: httpx.AsyncClient) -> None:  # noqa: F811
    response = await api.get("/schema/assets/no-such-file.js")
    assert response.status_code == 404
