"""Post bodies are rendered once, when written, within the render budget; reads serve what was
stored. On SQLite and Postgres, through the posts API in the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.content_html import RENDER_VERSION, render_body, unrendered_body
from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import bearer, ensure_user
from storage.models import Post
from storage.posts import PostRepository
from tests.asgi import serve_in_loop
from tests.html_safety import assert_inert
from tests.integration.test_posts_api import EDITOR_ID, VIEWER_ID, PostsApi, names_field
from tests.integration.test_task_api import FAST, point_env_at_fakes

# Costs 1.4-2 s of CPU to render (runs of "![" are the costliest markdown per character found),
# past the default budget of 1 s, yet under the size cap.
COSTLY = "![" * 50_000


@pytest.fixture
async def api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[PostsApi]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    # The default budget: what a deployment gets.
    monkeypatch.delenv("MARKDOWN_RENDER_SECONDS", raising=False)
    await ensure_user(migrated_database_url, name="editor", role="editor", user_id=EDITOR_ID)
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="rendering-test", **FAST))
    async with serve_in_loop(app) as client:
        yield PostsApi(client, bearer(EDITOR_ID, "editor"), bearer(VIEWER_ID, "viewer"))


async def stored_post(sessions: async_sessionmaker[AsyncSession], post_id: str) -> Post:
    async with sessions() as session:
        post = await session.scalar(select(Post).where(Post.id == post_id))
    assert post is not None
    return post


async def test_a_body_too_costly_to_render_is_refused_with_a_400_naming_markdown(
    api: PostsApi, sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await api.client.post("/api/posts", json={"title": "Costly", "markdown": COSTLY}, headers=api.editor)
    assert created.status_code == 400, created.text[:500]
    assert names_field(created.json(), "markdown") and "CPU time" in created.json()["detail"]

    kept = await api.create(title="Kept", markdown="The body as it was.")
    patched = await api.client.patch(f"/api/posts/{kept['id']}", json={"markdown": COSTLY, "title": "Changed"},
                                     headers=api.editor)
    assert patched.status_code == 400, patched.text[:500]
    assert names_field(patched.json(), "markdown")

    async with sessions() as session:
        titles = list(await session.scalars(select(Post.title)))
    assert titles == ["Kept"]  # nothing of either refused write was stored
    assert (await api.client.get(f"/api/posts/{kept['id']}", headers=api.viewer)).json() == kept


async def test_a_write_stores_the_rendered_body_with_the_post(api: PostsApi,
                                                              sessions: async_sessionmaker[AsyncSession]) -> None:
    created = await api.create(title="Stored", markdown="First **bold** paragraph.\n\nSecond one.")
    patched = await api.patch(created["id"], markdown="Now *this*.")

    post = await stored_post(sessions, created["id"])
    expected = render_body("Now *this*.")
    assert (post.html, post.word_count, post.body_excerpt, post.rendered_version) == (
        expected.html, expected.word_count, expected.excerpt, RENDER_VERSION)
    assert (patched["html"], patched["word_count"], patched["excerpt"]) == (
        expected.html, expected.word_count, expected.excerpt)


async def test_reads_serve_the_stored_html_without_rendering_again(
    api: PostsApi, sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await api.create(title="Served as stored", markdown="Rendered once.", status="published")
    async with sessions.begin() as session:
        # A value no render of the markdown gives: a read that rendered again would not show it.
        await session.execute(update(Post).where(Post.id == created["id"])
                              .values(html="<p>as stored</p>\n", word_count=42, body_excerpt="stored excerpt"))

    reads: list[dict[str, Any]] = [
        (await api.client.get(f"/api/posts/{created['id']}")).json(),
        (await api.client.get(f"/api/posts/by-slug/{created['slug']}")).json(),
        (await api.client.get("/api/posts")).json()["items"][0],
    ]
    for read in reads:
        assert (read["html"], read["word_count"], read["excerpt"]) == ("<p>as stored</p>\n", 42, "stored excerpt")


async def test_a_post_stored_without_its_rendering_gets_it_on_its_first_read(
    api: PostsApi, sessions: async_sessionmaker[AsyncSession],
) -> None:
    # As a post from before renderings were stored (migration 0011), and one from an older renderer.
    async with sessions.begin() as session:
        posts = PostRepository(session)
        unrendered = await posts.create(title="Old", generated_slug="old", markdown="Old *body*.", status="published")
        outdated = await posts.create(title="Older", generated_slug="older", markdown="Older **body**.",
                                      status="published", rendered=render_body("something else"))
        outdated.rendered_version = RENDER_VERSION - 1
        ids = {unrendered.id: "Old *body*.", outdated.id: "Older **body**."}

    listed = {item["id"]: item for item in (await api.client.get("/api/posts")).json()["items"]}

    for post_id, markdown in ids.items():
        expected = render_body(markdown)
        assert listed[post_id]["html"] == expected.html and listed[post_id]["word_count"] == expected.word_count
        post = await stored_post(sessions, post_id)
        assert (post.html, post.word_count, post.body_excerpt, post.rendered_version) == (
            expected.html, expected.word_count, expected.excerpt, RENDER_VERSION)


async def test_an_old_post_too_costly_to_render_is_shown_and_kept_as_escaped_text(
    api: PostsApi, sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        post = await PostRepository(session).create(title="Costly old", generated_slug="costly-old",
                                                    markdown=f"<script>alert(1)</script>{COSTLY}", status="published")

    read = (await api.client.get(f"/api/posts/{post.id}")).json()

    expected = unrendered_body(f"<script>alert(1)</script>{COSTLY}")
    assert read["html"] == expected.html and read["html"].startswith("<pre>&lt;script&gt;")
    assert_inert(read["html"])
    assert (await stored_post(sessions, post.id)).html == expected.html  # not rendered again on each read
