"""The one-statement first outcome on Postgres (storage/outcomes.py): it writes nothing in every
case it leaves to the session path, and the outcome saver stores what either path stores.
tests/integration/test_write_paths.py compares the rows the two paths store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.content_html import render_body
from app.graph_runtime import outcome_saver
from app.markdown_renderer import MarkdownRenderer
from graph.post import draft_post_of
from storage import outcomes
from storage.engine import create_autocommit_engine
from storage.models import Attempt, Post, SlugCounter, Task, TaskStatus, Usage
from storage.posts import PostRepository
from storage.tasks import TaskRepository
from storage.write_paths import WritePaths
from tests.integration.test_save_run_outcome import ATTEMPTS, USAGE

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                     indirect=True)

TASK_COLUMNS = ("status", "request", "params", "intent", "result", "warnings", "model", "provider", "error",
                "input_tokens", "output_tokens", "cost_usd", "lease_owner", "lease_expires_at")
ATTEMPT_COLUMNS = ("number", "title", "markdown", "word_count", "score", "passed", "dimensions", "checks", "issues",
                   "suggestions", "feedback", "model", "provider", "input_tokens", "output_tokens", "duration_ms")
USAGE_COLUMNS = ("node", "provider", "model", "input_tokens", "output_tokens", "duration_ms", "cost_usd")
POST_COLUMNS = ("title", "markdown", "excerpt", "featured_image", "sources", "keywords", "status", "custom_slug",
                "seo_title", "meta_description", "author_id", "html", "word_count", "body_excerpt", "rendered_version")


@pytest.fixture
async def autocommit_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_autocommit_engine(migrated_database_url)
    assert engine is not None
    try:
        yield engine
    finally:
        await engine.dispose()


def _content(title: str = "Async Python", **result: Any) -> dict[str, Any]:
    return {
        "kind": "content", "title": title, "markdown": f"# {title}\n\nBody text.", "score": 86.0, "passed": True,
        "seo": {"slug": "async-python", "keywords": ["async", "python"]}, "sources": [{"url": "https://a.example"}],
        "featured_image": {"url": "https://img.example/1.jpg"}, **result,
    }


def _outcome(task_id: str, thread_id: str, **overrides: Any) -> dict[str, Any]:
    """The finalize node's outcome, with the post's body rendered as the outcome saver renders it."""
    outcome: dict[str, Any] = {
        "task_id": task_id, "thread_id": thread_id, "request": "write a post on async Python",
        "params": {"topic": "async Python", "target_words": 900}, "intent": {"kind": "content"},
        "result": _content(), "attempts": ATTEMPTS, "usage": USAGE, "warnings": ["pexels not configured"],
        "model": "gpt-4o-mini", "provider": "openai",
    }
    outcome.update(overrides)
    draft = draft_post_of(outcome["result"] or {})
    outcome["rendered"] = render_body(draft.changes["markdown"]) if draft is not None else None
    return outcome


async def save_first_run_outcome(engine: AsyncEngine, **outcome: Any) -> bool:
    """The one-statement path alone: save_outcome takes the session path whenever it declines,
    so what it declines is only seen here."""
    task_id = outcome.pop("task_id")
    fields = {"error": None, **outcome, "draft": draft_post_of(outcome["result"] or {})}
    return await outcomes._save_first_outcome(engine, outcomes._Outcome(**fields), task_id)


async def save_run_outcome(sessions: async_sessionmaker[AsyncSession], numbers_engine: AsyncEngine,
                           **outcome: Any) -> None:
    """The session path, with slug numbers drawn as the service draws them."""
    paths = WritePaths(sessions, numbers_engine).session_only()
    await outcomes.save_outcome(paths, **outcome, draft=draft_post_of(outcome["result"] or {}))


async def _queued(sessions: async_sessionmaker[AsyncSession], thread_id: str, status: TaskStatus = TaskStatus.RUNNING,
                  ) -> str:
    async with sessions.begin() as session:
        task = await TaskRepository(session).create(request="queued text", params={"topic": "queued"},
                                                    thread_id=thread_id, status=status)
        return task.id


async def _stored(sessions: async_sessionmaker[AsyncSession], task_id: str) -> dict[str, Any]:
    """What the task left in every table, without ids and clocks."""
    async with sessions() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        attempts = list(await session.scalars(select(Attempt).where(Attempt.task_id == task_id).order_by(Attempt.number)))
        usage = list(await session.scalars(select(Usage).where(Usage.task_id == task_id).order_by(Usage.created_at)))
        post = await session.scalar(select(Post).where(Post.task_id == task_id))
    return {
        "task": {column: getattr(task, column) for column in TASK_COLUMNS},
        "started": task.started_at is not None, "finished": task.finished_at is not None,
        "attempts": [{column: getattr(row, column) for column in ATTEMPT_COLUMNS} for row in attempts],
        "usage": [{column: getattr(row, column) for column in USAGE_COLUMNS} for row in usage],
        "post": None if post is None else {column: getattr(post, column) for column in POST_COLUMNS},
        "published": None if post is None else post.published_at is not None,
        "slug": None if post is None else post.slug,
    }


async def _rows(sessions: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_empty_request_and_params_keep_what_the_task_was_queued_with(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine,
) -> None:
    task_id = await _queued(sessions, "keep")

    assert await save_first_run_outcome(autocommit_engine, **_outcome(task_id, "keep", request="", params={}))

    stored = await _stored(sessions, task_id)
    assert (stored["task"]["request"], stored["task"]["params"]) == ("queued text", {"topic": "queued"})


async def test_outcome_for_a_thread_with_a_post_is_left_to_the_session_path(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine,
) -> None:
    first = await _queued(sessions, "revised")
    assert await save_first_run_outcome(autocommit_engine, **_outcome(first, "revised"))
    second = await _queued(sessions, "revised")
    async with sessions() as session:
        counter_before = await session.scalar(select(SlugCounter.last).where(SlugCounter.base == "async-python"))

    assert not await save_first_run_outcome(autocommit_engine, **_outcome(second, "revised", result=_content("v2")))

    untouched = await _stored(sessions, second)
    assert untouched["task"]["result"] is None and untouched["attempts"] == [] and untouched["usage"] == []
    async with sessions() as session:
        counter_after = await session.scalar(select(SlugCounter.last).where(SlugCounter.base == "async-python"))
    assert counter_after == counter_before  # no number drawn for a post that is updated instead
    # The session path then revises the thread's draft: still one post.
    await save_run_outcome(sessions, numbers_engine=autocommit_engine, **_outcome(second, "revised", result=_content("v2")))
    assert await _rows(sessions, Post) == 1


@pytest.mark.parametrize("case", ["finished-again", "cancelled", "no-task-row", "other-thread"])
async def test_outcome_outside_the_simple_case_writes_nothing(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine, case: str,
) -> None:
    task_id = await _queued(sessions, "t", TaskStatus.CANCELLED if case == "cancelled" else TaskStatus.RUNNING)
    if case == "finished-again":
        assert await save_first_run_outcome(autocommit_engine, **_outcome(task_id, "t", result=None))
    before = await _stored(sessions, task_id)
    posts = await _rows(sessions, Post)
    outcome = _outcome("no-such-task" if case == "no-task-row" else task_id,
                       "elsewhere" if case == "other-thread" else "t")

    assert not await save_first_run_outcome(autocommit_engine, **outcome)

    assert await _stored(sessions, task_id) == before
    assert await _rows(sessions, Post) == posts


async def test_a_slug_taken_by_hand_is_left_to_the_session_path_which_numbers_past_it(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine,
) -> None:
    async with sessions.begin() as session:
        await PostRepository(session).create(title="Mine", generated_slug="mine", slug="async-python")
    task_id = await _queued(sessions, "taken")
    outcome = _outcome(task_id, "taken")

    assert not await save_first_run_outcome(autocommit_engine, **outcome)
    assert (await _stored(sessions, task_id))["post"] is None

    async with MarkdownRenderer() as renderer:
        await outcome_saver(WritePaths(sessions, autocommit_engine), renderer)(outcome)
    assert (await _stored(sessions, task_id))["slug"] == "async-python-2"


async def test_concurrent_first_outcomes_titled_alike_get_distinct_slugs(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine,
) -> None:
    task_ids = [await _queued(sessions, f"many-{n}") for n in range(12)]

    saved = await asyncio.gather(*(save_first_run_outcome(autocommit_engine, **_outcome(task_id, f"many-{n}"))
                                   for n, task_id in enumerate(task_ids)))

    assert all(saved)
    slugs = sorted([(await _stored(sessions, task_id))["slug"] for task_id in task_ids])
    assert slugs == sorted(["async-python", *(f"async-python-{n}" for n in range(2, 13))])


async def test_the_outcome_saver_stores_a_repeated_finalize_once(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine,
) -> None:
    task_id = await _queued(sessions, "again")

    async with MarkdownRenderer() as renderer:
        save = outcome_saver(WritePaths(sessions, autocommit_engine), renderer)
        await save(_outcome(task_id, "again"))
        await save(_outcome(task_id, "again"))

    stored = await _stored(sessions, task_id)
    assert [row["number"] for row in stored["attempts"]] == [1, 2]
    assert len(stored["usage"]) == 2
    assert await _rows(sessions, Post) == 1


@pytest.mark.parametrize("path", ["one-statement", "session"])
async def test_the_outcome_saver_stores_the_posts_body_rendered_on_either_path(
    sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine, path: str,
) -> None:
    if path == "session":
        async with sessions.begin() as session:  # a slug taken by hand sends the outcome the session way
            await PostRepository(session).create(title="Mine", generated_slug="mine", slug="async-python")
    task_id = await _queued(sessions, path)
    body = "Intro with **bold** and [a link](https://a.example).\n\n## Part\n\nMore."
    outcome = _outcome(task_id, path, result=_content(markdown=f"# Async Python\n\n{body}"))
    del outcome["rendered"]  # the saver renders it

    async with MarkdownRenderer() as renderer:
        await outcome_saver(WritePaths(sessions, autocommit_engine), renderer)(outcome)

    post = (await _stored(sessions, task_id))["post"]
    expected = render_body(body)
    assert (post["html"], post["word_count"], post["body_excerpt"], post["rendered_version"]) == (
        expected.html, expected.word_count, expected.excerpt, expected.version)
