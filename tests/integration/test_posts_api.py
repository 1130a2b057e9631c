"""The posts API in the test's loop over real SQLite and Postgres: CRUD, slugs, validation, who
may read and write what, and XSS payloads coming out inert."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import bearer, ensure_user
from tests.asgi import serve_in_loop
from tests.html_safety import assert_inert, parse_tags
from tests.integration.test_task_api import FAST, point_env_at_fakes
from tests.unit.test_content_html import XSS_PAYLOADS

EDITOR_ID = "00000000-0000-4000-8000-0000000000d1"
VIEWER_ID = "00000000-0000-4000-8000-0000000000d2"
MISSING_ID = "8d4f7e0c-0000-4000-8000-000000000000"


@dataclass
class PostsApi:
    client: httpx.AsyncClient
    editor: dict[str, str]
    viewer: dict[str, str]

    async def create(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/api/posts", json={"markdown": "Some text.", **body}, headers=self.editor)
        assert response.status_code == 201, response.text
        return response.json()

    async def patch(self, post_id: str, **body: Any) -> dict[str, Any]:
        response = await self.client.patch(f"/api/posts/{post_id}", json=body, headers=self.editor)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[PostsApi]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url, name="editor", role="editor", user_id=EDITOR_ID)
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="posts-test", **FAST))
    async with serve_in_loop(app) as client:
        yield PostsApi(client, bearer(EDITOR_ID, "editor"), bearer(VIEWER_ID, "viewer"))


# CRUD --------------------------------------------------------------------------------------------


async def test_create_answers_201_with_location_slug_html_and_author(api: PostsApi) -> None:
    response = await api.client.post("/api/posts", headers=api.editor, json={
        "title": "Async Python, explained!", "markdown": "Intro with a [link](https://docs.python.org).\n\n## Part\n\nMore.",
        "sources": [{"url": "https://docs.python.org", "title": "Docs"}], "keywords": ["asyncio"]})
    assert response.status_code == 201, response.text
    post = response.json()
    assert response.headers["location"] == f"/api/posts/{post['id']}"
    assert post["slug"] == "async-python-explained" and post["status"] == "draft"
    assert post["author_id"] == EDITOR_ID and post["task_id"] is None and post["published_at"] is None
    assert '<a href="https://docs.python.org" rel="noopener noreferrer">link</a>' in post["html"]
    assert post["excerpt"] == "Intro with a link."
    assert post["seo"] == {"seo_title": "Async Python, explained!", "meta_description": "Intro with a link.",
                           "keywords": ["asyncio"]}
    assert post["sources"] == [{"url": "https://docs.python.org", "title": "Docs"}]
    assert post["word_count"] > 0 and post["reading_minutes"] == 1


async def test_a_post_reads_back_by_id_and_by_slug(api: PostsApi) -> None:
    created = await api.create(title="Read me")
    by_id = await api.client.get(f"/api/posts/{created['id']}", headers=api.viewer)
    by_slug = await api.client.get("/api/posts/by-slug/read-me", headers=api.viewer)
    assert by_id.status_code == by_slug.status_code == 200
    assert by_id.json() == by_slug.json() == created


async def test_patch_changes_only_the_fields_sent(api: PostsApi) -> None:
    created = await api.create(title="Patch me", excerpt="Hand written.", keywords=["a"])
    patched = await api.patch(created["id"], markdown="New body.", excerpt=None)
    assert patched["markdown"] == "New body." and patched["html"] == "<p>New body.</p>\n"
    assert patched["excerpt"] == "New body."  # null: derived from the body again
    assert patched["title"] == "Patch me" and patched["seo"]["keywords"] == ["a"]
    assert patched["updated_at"] >= created["updated_at"]


async def test_delete_answers_204_and_the_post_is_gone(api: PostsApi) -> None:
    created = await api.create(title="Delete me")
    response = await api.client.delete(f"/api/posts/{created['id']}", headers=api.editor)
    assert response.status_code == 204 and response.content == b""
    assert (await api.client.get(f"/api/posts/{created['id']}", headers=api.viewer)).status_code == 404
    assert (await api.client.delete(f"/api/posts/{created['id']}", headers=api.editor)).status_code == 404


async def test_the_list_filters_by_status_and_pages_without_gaps(api: PostsApi) -> None:
    drafts = [(await api.create(title=f"Draft {i}"))["id"] for i in range(3)]
    published = [(await api.create(title=f"Live {i}", status="published"))["id"] for i in range(2)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/posts", params=params, headers=api.viewer)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(drafts + published))
    only_live = (await api.client.get("/api/posts", params={"status": "published"}, headers=api.viewer)).json()
    assert [item["id"] for item in only_live["items"]] == list(reversed(published))
    both = (await api.client.get("/api/posts", params={"status": ["draft", "published"]}, headers=api.viewer)).json()
    assert len(both["items"]) == 5


async def test_publishing_stamps_published_at_once(api: PostsApi) -> None:
    created = await api.create(title="Going live")
    first = await api.patch(created["id"], status="published")
    assert first["status"] == "published" and first["published_at"]
    archived = await api.patch(created["id"], status="archived")
    again = await api.patch(created["id"], status="published")
    assert archived["published_at"] == again["published_at"] == first["published_at"]


# slugs -------------------------------------------------------------------------------------------


async def test_same_titles_get_numeric_suffixes(api: PostsApi) -> None:
    slugs = [(await api.create(title="Hello, World"))["slug"] for _ in range(3)]
    assert slugs == ["hello-world", "hello-world-2", "hello-world-3"]


async def test_an_explicit_slug_is_kept_and_a_taken_one_is_409(api: PostsApi) -> None:
    created = await api.create(title="Anything", slug="my-own-slug")
    assert created["slug"] == "my-own-slug" and created["custom_slug"] is True
    clash = await api.client.post("/api/posts", json={"title": "Other", "slug": "my-own-slug"}, headers=api.editor)
    assert clash.status_code == 409 and "slug" in clash.json()["detail"]
    other = await api.create(title="Other")
    patch_clash = await api.client.patch(f"/api/posts/{other['id']}", json={"slug": "my-own-slug"}, headers=api.editor)
    assert patch_clash.status_code == 409 and "slug" in patch_clash.json()["detail"]


async def test_a_title_change_renames_the_slug_only_of_an_unpublished_post_without_a_chosen_slug(api: PostsApi) -> None:
    post = await api.create(title="First title")
    post = await api.patch(post["id"], title="Second title")
    assert post["slug"] == "second-title"
    post = await api.patch(post["id"], status="published")
    post = await api.patch(post["id"], title="Third title")
    assert post["slug"] == "second-title"  # published: its URL stays

    chosen = await api.create(title="Chosen", slug="chosen-slug")
    chosen = await api.patch(chosen["id"], title="Renamed")
    assert chosen["slug"] == "chosen-slug"
    chosen = await api.patch(chosen["id"], slug=None)
    assert chosen["slug"] == "renamed" and chosen["custom_slug"] is False


# validation --------------------------------------------------------------------------------------


# Each group runs in one app: starting the service per case would cost seconds apiece.
BAD_CREATES: list[tuple[Any, str]] = [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 301}, "title"),
    ({"title": 42}, "title"),
    ({"title": "ok", "status": "live"}, "status"),
    ({"title": "ok", "slug": "Not A Slug"}, "slug"),
    ({"title": "ok", "slug": "trailing-"}, "slug"),
    ({"title": "ok", "slug": "a" * 101}, "slug"),
    ({"title": "ok", "keywords": [f"k{i}" for i in range(11)]}, "keywords"),
    ({"title": "ok", "seo_title": "x" * 61}, "seo_title"),
    ({"title": "ok", "meta_description": "x" * 161}, "meta_description"),
    ({"title": "ok", "featured_image": {"url": "javascript:alert(1)"}}, "featured_image"),
    ({"title": "ok", "featured_image": "a picture"}, "featured_image"),
    ({"title": "ok", "sources": [{"url": "ftp://example.com"}]}, "sources"),
    ({"title": "ok", "sources": "https://example.com"}, "sources"),
    ({"title": "ok", "surprise": True}, "surprise"),
    ({"title": "ok", "markdown": "x" * 100_001}, "markdown"),
    ([1, 2], "body"),
]
BAD_PATCHES: list[tuple[dict[str, Any], str]] = [
    ({"title": None}, "title"),
    ({"title": ""}, "title"),
    ({"status": None}, "status"),
    ({"status": "deleted"}, "status"),
    ({"slug": "UPPER"}, "slug"),
    ({"markdown": None}, "markdown"),
    ({"id": "new-id"}, "id"),
]
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("get", f"/api/posts/{MISSING_ID}", {}, 404),
    ("get", "/api/posts/not-a-uuid", {}, 404),
    ("get", "/api/posts/by-slug/no-such-post", {}, 404),
    ("patch", f"/api/posts/{MISSING_ID}", {"json": {"title": "x"}}, 404),
    ("patch", "/api/posts/not-a-uuid", {"json": {"title": "x"}}, 404),
    ("delete", f"/api/posts/{MISSING_ID}", {}, 404),
    ("delete", "/api/posts/not-a-uuid", {}, 404),
    ("get", "/api/posts", {"params": {"status": "live"}}, 400),
    ("get", "/api/posts", {"params": {"limit": 0}}, 400),
    ("get", "/api/posts", {"params": {"limit": 201}}, 400),
    ("get", "/api/posts", {"params": {"cursor": "garbage"}}, 400),
    ("post", "/api/posts", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
]


def names_field(error: dict[str, Any], field: str) -> bool:
    return field in error["detail"] or field in {f["field"] for f in error.get("fields", [])}


async def test_bad_post_input_gets_a_422_naming_the_field(api: PostsApi) -> None:
    for body, field in BAD_CREATES:
        response = await api.client.post("/api/posts", json=body, headers=api.editor)
        assert response.status_code == 422, (body, response.text)
        assert names_field(response.json(), field), (body, response.text)
    assert (await api.client.get("/api/posts", headers=api.viewer)).json()["items"] == []


async def test_bad_patches_get_a_422_naming_the_field(api: PostsApi) -> None:
    created = await api.create(title="Target")
    for body, field in BAD_PATCHES:
        response = await api.client.patch(f"/api/posts/{created['id']}", json=body, headers=api.editor)
        assert response.status_code == 422, (body, response.text)
        assert names_field(response.json(), field), (body, response.text)
    unchanged = (await api.client.get(f"/api/posts/{created['id']}", headers=api.viewer)).json()
    assert unchanged == created


async def test_bad_requests_get_json_4xx_never_500(api: PostsApi) -> None:
    for method, path, kwargs, status in BAD_REQUESTS:
        extra = dict(kwargs)
        headers = {**api.editor, **extra.pop("headers", {})}
        response = await getattr(api.client, method)(path, headers=headers, **extra)
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["status"] == status and response.json()["detail"], (method, path)


# who may read and write --------------------------------------------------------------------------


async def test_anonymous_readers_see_published_posts_only(api: PostsApi) -> None:
    draft = await api.create(title="Secret draft")
    archived = await api.create(title="Old news", status="archived")
    live = await api.create(title="Live post", status="published")
    listed = await api.client.get("/api/posts")
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [live["id"]]
    assert (await api.client.get("/api/posts", params={"status": "draft"})).json()["items"] == []
    assert (await api.client.get(f"/api/posts/{live['id']}")).status_code == 200
    assert (await api.client.get("/api/posts/by-slug/live-post")).status_code == 200
    for hidden in (draft, archived):
        by_id = await api.client.get(f"/api/posts/{hidden['id']}")
        by_slug = await api.client.get(f"/api/posts/by-slug/{hidden['slug']}")
        assert by_id.status_code == by_slug.status_code == 404
        # Indistinguishable from a post that does not exist.
        assert by_id.json()["detail"] == f"post {hidden['id']} not found"


async def test_anonymous_readers_do_not_get_internal_ids(api: PostsApi) -> None:
    live = await api.create(title="Live post", status="published")
    public = (await api.client.get(f"/api/posts/{live['id']}")).json()
    assert "author_id" not in public and "task_id" not in public
    assert public["html"] == live["html"] and public["title"] == live["title"]


async def test_a_viewer_sees_every_post(api: PostsApi) -> None:
    draft = await api.create(title="Secret draft")
    assert (await api.client.get(f"/api/posts/{draft['id']}", headers=api.viewer)).status_code == 200
    listed = (await api.client.get("/api/posts", headers=api.viewer)).json()
    assert [item["id"] for item in listed["items"]] == [draft["id"]]


async def test_a_bad_token_on_a_public_read_is_401_not_the_anonymous_view(api: PostsApi) -> None:
    response = await api.client.get("/api/posts", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_writes_need_an_editor(api: PostsApi) -> None:
    post = await api.create(title="Guarded")
    writes = [("post", "/api/posts", {"json": {"title": "x"}}),
              ("patch", f"/api/posts/{post['id']}", {"json": {"title": "x"}}),
              ("delete", f"/api/posts/{post['id']}", {})]
    for method, path, kwargs in writes:
        anonymous = await getattr(api.client, method)(path, **kwargs)
        assert anonymous.status_code == 401, (method, anonymous.text)
        viewer = await getattr(api.client, method)(path, headers=api.viewer, **kwargs)
        assert viewer.status_code == 403, (method, viewer.text)
    assert (await api.client.get(f"/api/posts/{post['id']}", headers=api.viewer)).json()["title"] == "Guarded"


# XSS ---------------------------------------------------------------------------------------------


TITLE_PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
]


async def test_payloads_in_the_body_are_served_inert_to_every_reader(api: PostsApi) -> None:
    ids = {}
    for payload in XSS_PAYLOADS:
        created = await api.create(title="Payload", markdown=f"Before.\n\n{payload}\n\nAfter {payload} inline.",
                                   status="published")
        assert created["markdown"].startswith("Before.")  # the source is kept as written
        assert_inert(created["html"])
        ids[created["id"]] = payload
    for post_id in ids:
        assert_inert((await api.client.get(f"/api/posts/{post_id}")).json()["html"])
    listed = (await api.client.get("/api/posts", params={"limit": 200})).json()["items"]
    assert {item["id"] for item in listed} == set(ids)
    for item in listed:
        assert_inert(item["html"])


async def test_payloads_in_the_title_are_served_escaped(api: PostsApi) -> None:
    for title in TITLE_PAYLOADS:
        created = await api.create(title=title, status="published")
        for body in (created, (await api.client.get(f"/api/posts/{created['id']}")).json()):
            assert body["title"] == title  # data, as written
            assert parse_tags(body["title_html"]) == [] and "<" not in body["title_html"], title
            assert html.unescape(body["title_html"]) == title
            assert all(ch.isalnum() or ch == "-" for ch in body["slug"]), body["slug"]
