"""Posts in storage on SQLite and Postgres: the one draft a content outcome makes, slug
allocation, and what happens to a post when its task goes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graph.post import body_without_title, draft_post_of
from storage.engine import create_autocommit_engine
from storage.models import Post, SlugCounter, TaskStatus
from storage.outcomes import save_outcome
from storage.posts import PostRepository, SlugTaken
from storage.slugs import slug_number
from storage.tasks import TaskRepository
from storage.threads import ThreadRepository
from storage.write_paths import WritePaths

IMAGE = {"id": 7, "url": "https://www.pexels.com/photo/7/", "src": "https://images.pexels.com/7.jpeg",
         "photographer": "Ann", "photographer_url": "https://www.pexels.com/@ann", "alt": "a desk"}
SOURCES = [{"url": "https://docs.python.org/3/library/asyncio.html", "title": "asyncio", "snippet": "...",
            "kind": "web"}]


def content_result(title: str = "Async Python in practice", body: str = "Why it matters.", **extra: Any) -> dict[str, Any]:
    return {"kind": "content", "title": title, "markdown": f"# {title}\n\n{body}\n\n## Conclusion\n\nDone.\n",
            "featured_image": IMAGE, "sources": SOURCES,
            "seo": {"seo_title": title, "meta_description": body, "keywords": ["asyncio"],
                    "slug": title.lower().replace(" ", "-")}, **extra}


def outcome(thread_id: str, result: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    return {"thread_id": thread_id, "task_id": task_id, "request": "write about async Python", "params": {},
            "intent": {"kind": "content"}, "result": result, "attempts": [], "usage": [], "warnings": [],
            "model": "llama3.2", "provider": "ollama"}


@pytest.fixture
async def numbers_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine | None]:
    """What the service gives run outcomes for drawing slug numbers: the autocommit engine on
    Postgres, nothing (numbers drawn in the outcome's own transaction) on SQLite."""
    engine = create_autocommit_engine(migrated_database_url)
    yield engine
    if engine is not None:
        await engine.dispose()


async def save_run_outcome(sessions: async_sessionmaker[AsyncSession], *, numbers_engine: AsyncEngine | None = None,
                           **outcome: Any) -> None:
    """A run's outcome with its post as finalize's saver reads it from the result.
    ``numbers_engine`` (the service's autocommit engine) draws slug numbers outside the
    outcome's transaction; these outcomes name no queued task, so they take the session path
    to the run's task row, made here as the engine or the CLI makes it before the run."""
    assert numbers_engine is None or outcome.get("task_id") is None
    task_id = outcome.get("task_id")
    async with sessions.begin() as session:
        tasks = TaskRepository(session)
        exists = await tasks.get(task_id) if task_id else await tasks.get_by_thread(outcome["thread_id"])
        if exists is None:
            await tasks.create(thread_id=outcome["thread_id"], task_id=task_id, status=TaskStatus.RUNNING)
    await save_outcome(WritePaths(sessions, numbers_engine), draft=draft_post_of(outcome["result"]), **outcome)


async def all_posts(sessions: async_sessionmaker[AsyncSession]) -> list[Post]:
    async with sessions() as session:
        return list(await session.scalars(select(Post).order_by(Post.created_at)))


async def test_a_content_outcome_makes_one_draft_post_however_often_it_is_saved(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    thread = str(uuid.uuid4())
    for _ in range(3):
        await save_run_outcome(sessions, **outcome(thread, content_result()))
    [post] = await all_posts(sessions)
    assert post.status == "draft" and post.author_id is None and post.published_at is None
    assert post.task_id is not None and post.slug == "async-python-in-practice" and not post.custom_slug
    assert post.title == "Async Python in practice"
    assert post.markdown.startswith("Why it matters.")
    assert post.featured_image == IMAGE and post.sources == SOURCES and post.keywords == ["asyncio"]


async def test_answers_and_unsupported_requests_make_no_post(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save_run_outcome(sessions, **outcome(str(uuid.uuid4()), {"kind": "answer", "answer": "yes", "markdown": "yes"}))
    await save_run_outcome(sessions, **outcome(str(uuid.uuid4()), {"kind": "unsupported", "markdown": ""}))
    assert await all_posts(sessions) == []


async def test_a_later_turn_updates_the_draft_instead_of_adding_a_post(sessions: async_sessionmaker[AsyncSession]) -> None:
    thread = str(uuid.uuid4())
    await save_run_outcome(sessions, **outcome(thread, content_result()))
    await save_run_outcome(sessions, **outcome(thread, content_result("Async Python revised", "Now with uvloop.")))
    [post] = await all_posts(sessions)
    assert post.title == "Async Python revised" and "uvloop" in post.markdown
    assert post.slug == "async-python-revised"


async def test_a_later_run_on_the_thread_updates_its_draft(sessions: async_sessionmaker[AsyncSession]) -> None:
    thread = str(uuid.uuid4())
    await save_run_outcome(sessions, **outcome(thread, content_result(), task_id=str(uuid.uuid4())))
    await save_run_outcome(sessions, **outcome(thread, content_result(body="Second run."), task_id=str(uuid.uuid4())))
    [post] = await all_posts(sessions)
    assert "Second run." in post.markdown


async def test_a_published_post_is_left_alone_and_a_new_turn_gets_its_own_draft(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    thread = str(uuid.uuid4())
    first_run, second_run = str(uuid.uuid4()), str(uuid.uuid4())
    published = content_result(approval={"approved": True, "feedback": "", "publish": True})
    await save_run_outcome(sessions, **outcome(thread, published, task_id=first_run))
    await save_run_outcome(sessions, **outcome(thread, published, task_id=first_run))  # finalize again
    await save_run_outcome(sessions, **outcome(thread, content_result(body="A follow-up."), task_id=second_run))
    live, draft = await all_posts(sessions)
    assert live.status == "published" and live.task_id == first_run and "follow-up" not in live.markdown
    assert draft.status == "draft" and draft.task_id == second_run and "follow-up" in draft.markdown
    assert draft.slug == "async-python-in-practice-2"


async def test_an_approval_with_publish_publishes_the_post(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save_run_outcome(sessions, **outcome(str(uuid.uuid4()), content_result(
        approval={"approved": True, "feedback": "", "publish": True})))
    await save_run_outcome(sessions, **outcome(str(uuid.uuid4()), content_result(
        "Not published", approval={"approved": True, "feedback": ""})))
    published, draft = await all_posts(sessions)
    assert published.status == "published" and published.published_at is not None
    assert draft.status == "draft" and draft.published_at is None


async def test_same_titled_posts_get_numeric_suffixes_even_when_saved_at_once(
        sessions: async_sessionmaker[AsyncSession], numbers_engine: AsyncEngine | None) -> None:
    await asyncio.gather(*(save_run_outcome(sessions, numbers_engine=numbers_engine,
                                            **outcome(str(uuid.uuid4()), content_result()))
                           for _ in range(8)))
    slugs = sorted((post.slug for post in await all_posts(sessions)), key=lambda slug: slug_number(
        "async-python-in-practice", slug) or 0)
    assert slugs == ["async-python-in-practice"] + [f"async-python-in-practice-{n}" for n in range(2, 9)]


async def test_same_titled_posts_without_the_numbers_engine_are_numbered_in_their_own_transactions(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    await asyncio.gather(*(save_run_outcome(sessions, **outcome(str(uuid.uuid4()), content_result()))
                           for _ in range(4)))
    slugs = sorted(post.slug for post in await all_posts(sessions))
    assert slugs == ["async-python-in-practice", "async-python-in-practice-2", "async-python-in-practice-3",
                     "async-python-in-practice-4"]


async def test_numbers_held_by_posts_from_before_the_counters_are_skipped(
        sessions: async_sessionmaker[AsyncSession], numbers_engine: AsyncEngine | None) -> None:
    for _ in range(3):
        await save_run_outcome(sessions, numbers_engine=numbers_engine, **outcome(str(uuid.uuid4()), content_result()))
    async with sessions.begin() as session:
        # As after upgrading a database whose posts were numbered before slug_counters existed.
        await session.execute(delete(SlugCounter))
        await session.execute(Post.__table__.insert().values(
            id=str(uuid.uuid4()), title="Five", slug="async-python-in-practice-5", custom_slug=True, markdown="",
            sources=[], keywords=[], status="draft", created_at=func.now(), updated_at=func.now()))
    for _ in range(3):
        await save_run_outcome(sessions, numbers_engine=numbers_engine, **outcome(str(uuid.uuid4()), content_result()))
    numbers = sorted(slug_number("async-python-in-practice", post.slug) or 0 for post in await all_posts(sessions))
    assert numbers == [1, 2, 3, 4, 5, 6, 7]


async def test_a_number_drawn_outside_the_transaction_is_not_reused_after_a_rollback(
        sessions: async_sessionmaker[AsyncSession], numbers_engine: AsyncEngine | None) -> None:
    if numbers_engine is None:
        pytest.skip("SQLite draws numbers inside the transaction, so a rollback returns them")
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            drafted = await PostRepository(session, numbers_engine).create(title="Hello", generated_slug="hello")
            assert drafted.slug == "hello"
            raise RuntimeError("the run's outcome failed after its post was drafted")
    async with sessions.begin() as session:
        kept = await PostRepository(session, numbers_engine).create(title="Hello", generated_slug="hello")
    assert kept.slug == "hello-2"


async def test_a_post_whose_slug_already_follows_the_new_title_keeps_it(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        posts = PostRepository(session)
        await posts.create(title="Hello", generated_slug="hello")
        second = await posts.create(title="Hello", generated_slug="hello")
        punctuated = await posts.update(second, {"title": "Hello!"}, generated_slug="hello")
        assert punctuated.slug == "hello-2"
        renamed = await posts.update(second, {"title": "Goodbye"}, generated_slug="goodbye")
    assert renamed.slug == "goodbye"
    async with sessions.begin() as session:
        posts = PostRepository(session)
        first = await posts.by_slug("hello")
        assert first is not None
        unchanged = await posts.update(first, {"title": "Hello again"}, generated_slug="hello")
    assert unchanged.slug == "hello"


async def test_an_explicit_slug_that_is_taken_raises_and_a_generated_one_moves_aside(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        posts = PostRepository(session)
        first = await posts.create(title="Hello", generated_slug="hello", slug="hello-2")
        second = await posts.create(title="Hello", generated_slug="hello")
        third = await posts.create(title="Hello", generated_slug="hello")
    assert (first.slug, second.slug, third.slug) == ("hello-2", "hello", "hello-3")
    assert first.custom_slug and not second.custom_slug
    try:
        async with sessions.begin() as session:
            await PostRepository(session).create(title="Other", generated_slug="other", slug="hello")
    except SlugTaken as exc:
        assert exc.slug == "hello"
    else:
        raise AssertionError("a taken explicit slug was accepted")


async def test_deleting_the_thread_keeps_its_post_unlinked(sessions: async_sessionmaker[AsyncSession]) -> None:
    thread = str(uuid.uuid4())
    await save_run_outcome(sessions, **outcome(thread, content_result()))
    async with sessions.begin() as session:
        await ThreadRepository(session).delete(thread)
    [post] = await all_posts(sessions)
    assert post.task_id is None
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Post)) == 1


def test_the_title_heading_is_dropped_from_a_post_body_only_when_it_is_the_title() -> None:
    assert body_without_title("# Async\n\nBody.\n", "Async") == "Body.\n"
    assert body_without_title("# Something else\n\nBody.\n", "Async") == "# Something else\n\nBody.\n"
    assert body_without_title("Body only.\n", "Async") == "Body only.\n"
