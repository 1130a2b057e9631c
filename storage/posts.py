"""CMS posts: unique slugs, newest-first pages, and the one post each content task makes.

Like the other repositories, this one flushes but never commits. Slugs are plain strings here:
the caller turns a title into a slug (graph/markdown.py) and this module keeps it unique.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.affected_rows import affected_rows
from storage.models import Post, PostStatus, Task, new_id, utcnow
from storage.pagination import decode_cursor, next_cursor, older_than, page_limit
from storage.slugs import SlugNumbers, numbered, slug_number

SLUG_MAX_CHARS = 100
# Room for a "-NNN" suffix under SLUG_MAX_CHARS when a generated slug collides.
GENERATED_SLUG_MAX_CHARS = 90
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Fields a partial update may set as given; slug and status have rules of their own.
PLAIN_FIELDS = ("title", "markdown", "excerpt", "featured_image", "sources", "seo_title", "meta_description",
                "keywords")
# Draws before giving up on a generated slug: the first may hit a number a person took by hand,
# the second comes after the run of taken numbers (storage/slugs.py); a third needs a race with
# a person taking exactly that slug.
GENERATED_SLUG_DRAWS = 3


class RenderedBody(Protocol):
    """A body rendered by app/content_html.py (this layer stores it and never renders)."""

    @property
    def html(self) -> str: ...

    @property
    def word_count(self) -> int: ...

    @property
    def excerpt(self) -> str: ...

    @property
    def version(self) -> int: ...


def rendered_columns(rendered: RenderedBody | None) -> dict[str, Any]:
    """The post columns a rendered body fills; None clears them, so that a markdown written
    without its rendering is rendered on its next read instead of showing the old one."""
    if rendered is None:
        return {"html": None, "word_count": None, "body_excerpt": None, "rendered_version": None}
    return {"html": rendered.html, "word_count": rendered.word_count, "body_excerpt": rendered.excerpt,
            "rendered_version": rendered.version}


class SlugTaken(ValueError):
    """An explicit slug that another post already has."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"slug {slug!r} is already used by another post")
        self.slug = slug


@dataclass(frozen=True, slots=True)
class PostPage:
    items: list[Post]
    next_cursor: str | None


def valid_slug(slug: str) -> bool:
    return len(slug) <= SLUG_MAX_CHARS and SLUG_PATTERN.fullmatch(slug) is not None


def slug_follows_title(post: Post) -> bool:
    """A title change renames the slug only while nobody chose one and the post was never
    published: a published URL may be linked from anywhere."""
    return not post.custom_slug and post.published_at is None


def slug_base(base: str) -> str:
    """The part of generated slugs before their number, with room left for the number."""
    return base[:GENERATED_SLUG_MAX_CHARS].rstrip("-") or "post"


@dataclass(frozen=True, slots=True)
class DraftPost:
    """What a finished content run's result puts in its post (graph/post.py makes it)."""

    changes: dict[str, Any]  # title, markdown, featured_image, sources, keywords
    generated_slug: str  # from the result's SEO slug; numbered when taken (storage/slugs.py)
    status: PostStatus  # published when the approval said so


class PostRepository:
    def __init__(self, session: AsyncSession, numbers_engine: AsyncEngine | None = None) -> None:
        """``numbers_engine``: an autocommit engine for drawing slug numbers outside this
        session's transaction (storage/slugs.py)."""
        self.session = session
        self.numbers = SlugNumbers(session, numbers_engine)

    async def get(self, post_id: str) -> Post | None:
        return await self.session.get(Post, post_id)

    async def by_slug(self, slug: str) -> Post | None:
        return await self.session.scalar(select(Post).where(Post.slug == slug))

    async def list(
        self,
        *,
        statuses: Sequence[str] | None = None,
        task_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PostPage:
        """Newest first, keyset-paginated on (created_at, id); raises ValueError on a bad cursor."""
        limit = page_limit(limit)
        stmt = select(Post)
        if statuses is not None:
            stmt = stmt.where(Post.status.in_([PostStatus(s).value for s in statuses]))
        if task_id is not None:
            stmt = stmt.where(Post.task_id == task_id)
        if cursor is not None:
            created_at, post_id = decode_cursor(cursor)
            stmt = stmt.where(older_than(Post.created_at, Post.id, created_at, post_id))
        rows = list(await self.session.scalars(stmt.order_by(Post.created_at.desc(), Post.id.desc()).limit(limit + 1)))
        items = rows[:limit]
        return PostPage(items=items, next_cursor=next_cursor(rows, limit))

    async def create(
        self,
        *,
        title: str,
        generated_slug: str,
        slug: str | None = None,
        status: PostStatus | str = PostStatus.DRAFT,
        author_id: str | None = None,
        task_id: str | None = None,
        rendered: RenderedBody | None = None,
        **fields: Any,
    ) -> Post:
        """A new post. ``slug`` is the caller's explicit choice (SlugTaken if used); without
        one, ``generated_slug`` (from the title) gets the next numeric suffix (storage/slugs.py).
        ``rendered``: the markdown's rendering; without it the first read renders it."""
        now = utcnow()
        post = Post(id=new_id(), title=title, author_id=author_id, task_id=task_id, created_at=now, updated_at=now,
                    status=PostStatus.DRAFT.value, custom_slug=False, sources=[], keywords=[],
                    **rendered_columns(rendered))
        for key, value in fields.items():
            if key not in PLAIN_FIELDS:
                raise TypeError(f"unknown post field {key!r}")
            setattr(post, key, value)
        await self._assign_slug(post, slug or generated_slug, explicit=slug is not None)
        self._set_status(post, PostStatus(status), now)
        self.session.add(post)
        await self._flush(post)
        return post

    async def update(self, post: Post, changes: Mapping[str, Any], *, generated_slug: str,
                     rendered: RenderedBody | None = None) -> Post:
        """Apply a partial update: ``changes`` holds only the fields the caller gave. A string
        ``slug`` is explicit from then on; ``slug: None`` hands it back to the title.
        ``generated_slug`` is what the (new) title would make. ``rendered``: the new markdown's
        rendering, when ``changes`` has markdown (without it the next read renders it)."""
        if "slug" in changes:
            explicit = changes["slug"]
            await self._assign_slug(post, explicit or generated_slug, explicit=explicit is not None)
        elif "title" in changes and changes["title"] != post.title and slug_follows_title(post):
            await self._assign_slug(post, generated_slug, explicit=False)
        for key in PLAIN_FIELDS:
            if key in changes:
                setattr(post, key, changes[key])
        if "markdown" in changes:
            for key, value in rendered_columns(rendered).items():
                setattr(post, key, value)
        now = utcnow()
        if "status" in changes:
            self._set_status(post, PostStatus(changes["status"]), now)
        post.updated_at = now
        await self._flush(post)
        return post

    async def store_rendered(self, post: Post, rendered: RenderedBody) -> None:
        """Store a rendering made on read, unless the markdown changed meanwhile (a write brings
        its own). The post's updated_at stays: nobody edited it."""
        columns = rendered_columns(rendered)
        await self.session.execute(
            update(Post).where(Post.id == post.id, Post.markdown == post.markdown)
            .values(**columns, updated_at=Post.updated_at).execution_options(synchronize_session=False))
        for key, value in columns.items():
            setattr(post, key, value)

    async def delete(self, post_id: str) -> bool:
        result = await self.session.execute(delete(Post).where(Post.id == post_id))
        return affected_rows(result) == 1

    async def save_for_task(self, task: Task, draft: DraftPost | None,
                            rendered: RenderedBody | None = None) -> Post | None:
        """The draft post of a finished content run, created or brought up to date, in the
        caller's (the run outcome's) transaction; None (nothing to store) for answers and
        unsupported requests. ``rendered``: the rendering of the draft's markdown.

        Keyed on the task, so finalize running again after a crash or retry finds the post it
        made. A later turn on the same thread (a revision) updates the thread's post while it
        is still a draft; once it was published or archived, that turn gets a draft of its own
        and the live post is left alone. An approval with ``publish`` publishes the post.
        """
        if draft is None:
            return None
        post = await self._post_of(task)
        if post is not None and post.status != PostStatus.DRAFT.value:
            if post.task_id == task.id:
                # This run's post already left draft (published by this very approval, or by a
                # person since): a repeated finalize has nothing to add.
                return post
            post = None
        if post is None:
            return await self.create(generated_slug=draft.generated_slug, status=draft.status, task_id=task.id,
                                     rendered=rendered, **draft.changes)
        return await self.update(post, {**draft.changes, "status": draft.status.value},
                                 generated_slug=draft.generated_slug, rendered=rendered)

    async def generated_slug(self, base: str, post: Post | None = None) -> str:
        """A free slug made from ``base``: ``base`` itself or ``base-N``. ``post`` keeps the slug
        it has when that is already one of ``base``'s (a title edited back and forth, say)."""
        base = slug_base(base)
        if post is not None and post.slug and slug_number(base, post.slug) is not None:
            return post.slug
        for _ in range(GENERATED_SLUG_DRAWS):
            number = await self.numbers.draw(base)
            candidate = numbered(base, number)
            owner = await self.session.scalar(select(Post.id).where(Post.slug == candidate))
            if owner is None:
                return candidate
            await self.numbers.skip_taken(base, number)
        raise SlugTaken(candidate)

    async def id_for_task(self, task: Task) -> str | None:
        """The id of the post written for ``task`` (else its thread's newest), if any."""
        post = await self._post_of(task)
        return None if post is None else post.id

    async def _post_of(self, task: Task) -> Post | None:
        """The task's own post, else the newest post of its thread, in one query."""
        return await self.session.scalar(
            select(Post).join(Task, Task.id == Post.task_id)
            .where(or_(Post.task_id == task.id, Task.thread_id == task.thread_id))
            .order_by(case((Post.task_id == task.id, 0), else_=1), Post.created_at.desc(), Post.id.desc()).limit(1)
        )

    async def _assign_slug(self, post: Post, slug: str, *, explicit: bool) -> None:
        if explicit:
            owner = await self.session.scalar(select(Post.id).where(Post.slug == slug))
            if owner is not None and owner != post.id:
                raise SlugTaken(slug)
            post.slug = slug
        else:
            post.slug = await self.generated_slug(slug, post)
        post.custom_slug = explicit

    @staticmethod
    def _set_status(post: Post, status: PostStatus, now: datetime) -> None:
        post.status = status.value
        # The first publication: later archiving or re-publishing keeps the original date.
        if status == PostStatus.PUBLISHED and post.published_at is None:
            post.published_at = now

    async def _flush(self, post: Post) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Only reachable when another writer took the slug between our check and our write
            # (SQLite's deferred transactions); the caller answers like for any taken slug.
            if "slug" in str(exc.orig):
                raise SlugTaken(post.slug) from exc
            raise
