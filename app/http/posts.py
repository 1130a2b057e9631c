"""The posts API: CMS posts with sanitised HTML. Reads are public for published posts only;
writes need an editor (the app-level guard in app/http/auth.py).

Slugs: made from the title unless one is given. Renaming a post renames its slug only while
the slug was never set by hand and the post was never published (a published URL may be
linked from anywhere); ``slug: null`` in a PATCH makes it follow the title again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.content_html import RenderedBody, unrendered_body
from app.graph_runtime import GraphRuntime
from app.http.auth import optional_principal, principal_of
from app.http.errors import ConflictError, NotFoundError
from app.http.post_schemas import PostCreate, PostStatusName, PostUpdate, post_body, stored_rendering
from app.markdown_renderer import MarkdownRenderer, RenderRefused, RenderUnavailable
from graph import markdown as md
from storage.models import Post, PostStatus
from storage.posts import PostRepository, SlugTaken

log = logging.getLogger("draftloop.http")

PUBLIC = {"public": True}


def _post_id(post_id: str) -> str | None:
    try:
        return str(uuid.UUID(post_id))
    except ValueError:
        return None


async def _existing_post(posts: PostRepository, post_id: str) -> Post:
    """The post the path's id names, for a change; 404 when there is none (an id that is not a
    UUID names none)."""
    checked = _post_id(post_id)
    found = await posts.get(checked) if checked else None
    if found is None:
        raise NotFoundError(detail=f"post {post_id} not found")
    return found


def _visible(post: Post | None, signed_in: bool) -> bool:
    # Anonymous readers get the same 404 for a draft as for nothing: no hint that it exists.
    return post is not None and (signed_in or post.status == PostStatus.PUBLISHED.value)


def _summary(post: Post) -> dict[str, str]:
    # Enough to tell posts apart in the audit log; the body can be large.
    return {"title": post.title, "slug": post.slug, "status": post.status}


def _slug_conflict(exc: SlugTaken) -> ConflictError:
    return ConflictError(detail=f"slug: {exc}")


async def _rendered_for_write(renderer: MarkdownRenderer, markdown: str) -> RenderedBody | None:
    """The body rendered before its transaction opens; a 400 naming ``markdown`` past the
    render budget. None when no render process answered: the write goes ahead and the first
    read renders the body, within the same budget."""
    try:
        return await renderer.render(markdown)
    except RenderRefused as exc:
        raise ValidationException(detail=f"markdown: {exc}", extra=[{"key": "markdown", "message": str(exc)}]) from exc
    except RenderUnavailable as exc:
        log.warning("post body of %d characters stored unrendered: %s", len(markdown), exc)
        return None


async def _bodies(posts: Sequence[Post], runtime: GraphRuntime, *, full: bool) -> list[dict[str, Any]]:
    """The posts as the API shows them, from their stored renderings. A post without a current
    one (stored before renderings were, or rendered by an earlier version of the renderer) is
    rendered now, within the budget, and stored for the reads after."""
    stored = [stored_rendering(post) for post in posts]
    stale = [post for post, rendering in zip(posts, stored, strict=True) if rendering is None]
    fresh = dict(zip((post.id for post in stale),
                     await asyncio.gather(*(runtime.renderer.render_or_escape(post.markdown) for post in stale)),
                     strict=True))
    await _store_renderings(runtime, [(post, rendering) for post in stale if (rendering := fresh[post.id]) is not None])
    bodies = []
    for one, rendering in zip(posts, stored, strict=True):
        # No render process answered: shown as text this once, rendered again on the next read.
        shown = rendering or fresh[one.id] or unrendered_body(one.markdown)
        bodies.append(post_body(one, shown, full=full))
    return bodies


async def _store_renderings(runtime: GraphRuntime, renderings: list[tuple[Post, RenderedBody]]) -> None:
    if not renderings:
        return
    try:
        async with runtime.sessions.begin() as session:
            posts = PostRepository(session)
            for post, rendering in renderings:
                await posts.store_rendered(post, rendering)
    except OperationalError as exc:
        # A busy database costs this read nothing: the next read renders and stores again.
        log.warning("could not store %d post renderings: %s", len(renderings), type(exc.orig).__name__)


class PostController(Controller):
    path = "/api/posts"
    tags = ["posts"]

    @post("/", status_code=201, summary="Create a post (editor)")
    async def create_post(self, request: Request[Any, Any, Any], data: JSONBody[PostCreate],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime]) -> Response[dict[str, Any]]:
        fields = data.model_dump(exclude_unset=True, exclude={"title", "slug", "status"})
        rendered = await _rendered_for_write(runtime.renderer, data.markdown)
        try:
            async with sessions.begin() as session:
                created = await PostRepository(session).create(
                    title=data.title, slug=data.slug, generated_slug=md.slugify(data.title), status=data.status,
                    author_id=principal_of(request).user_id, rendered=rendered, **fields)
        except SlugTaken as exc:
            raise _slug_conflict(exc) from exc
        audit_change(request, resource_id=created.id, after=_summary(created))
        body = (await _bodies([created], runtime, full=True))[0]
        return Response(body, status_code=201, headers={"Location": body["links"]["self"]})

    @get("/", opt=PUBLIC, summary="List posts, newest first (anonymous callers: published only)")
    async def list_posts(
        self,
        request: Request[Any, Any, Any],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        runtime: NamedDependency[GraphRuntime],
        status: list[PostStatusName] | None = Parameter(default=None, description="filter; repeat for several"),
        task_id: str | None = Parameter(default=None, description="the post a task made"),
        limit: int = Parameter(default=20, ge=1, le=200),
        cursor: str | None = Parameter(default=None, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        signed_in = optional_principal(request) is not None
        statuses: list[str] | None = list(status) if status else None
        if not signed_in:
            if statuses is not None and PostStatus.PUBLISHED.value not in statuses:
                return {"items": [], "next_cursor": None}
            statuses = [PostStatus.PUBLISHED.value]
        async with sessions() as session:
            try:
                page = await PostRepository(session).list(statuses=statuses, task_id=task_id, limit=limit,
                                                          cursor=cursor)
            except ValueError as exc:
                raise ValidationException(detail=f"cursor: {exc}", extra=[{"key": "cursor", "message": str(exc)}]) from exc
        return {"items": await _bodies(page.items, runtime, full=signed_in), "next_cursor": page.next_cursor}

    @get("/{post_id:str}", opt=PUBLIC, summary="A post by id (anonymous callers: published only)")
    async def get_post(self, request: Request[Any, Any, Any], post_id: FromPath[str],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                       runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        signed_in = optional_principal(request) is not None
        found = None
        if (checked := _post_id(post_id)) is not None:
            async with sessions() as session:
                found = await PostRepository(session).get(checked)
        if found is None or not _visible(found, signed_in):
            raise NotFoundError(detail=f"post {post_id} not found")
        return (await _bodies([found], runtime, full=signed_in))[0]

    @get("/by-slug/{slug:str}", opt=PUBLIC, summary="A post by slug (anonymous callers: published only)")
    async def get_post_by_slug(self, request: Request[Any, Any, Any], slug: FromPath[str],
                               sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                               runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        signed_in = optional_principal(request) is not None
        async with sessions() as session:
            found = await PostRepository(session).by_slug(slug)
        if found is None or not _visible(found, signed_in):
            raise NotFoundError(detail=f"post with slug {slug!r} not found")
        return (await _bodies([found], runtime, full=signed_in))[0]

    @patch("/{post_id:str}", summary="Change some fields of a post (editor)")
    async def update_post(self, request: Request[Any, Any, Any], post_id: FromPath[str], data: JSONBody[PostUpdate],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        changes = data.changes()
        rendered = await _rendered_for_write(runtime.renderer, changes["markdown"]) if "markdown" in changes else None
        try:
            async with sessions.begin() as session:
                posts = PostRepository(session)
                found = await _existing_post(posts, post_id)
                before = _summary(found)
                title = changes.get("title") or found.title
                updated = await posts.update(found, changes, generated_slug=md.slugify(title), rendered=rendered)
        except SlugTaken as exc:
            raise _slug_conflict(exc) from exc
        audit_change(request, before=before, after=_summary(updated), fields=sorted(changes))
        return (await _bodies([updated], runtime, full=True))[0]

    @delete("/{post_id:str}", status_code=204, summary="Delete a post (editor)")
    async def delete_post(self, request: Request[Any, Any, Any], post_id: FromPath[str],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> None:
        async with sessions.begin() as session:
            posts = PostRepository(session)
            found = await _existing_post(posts, post_id)
            before = _summary(found)
            await posts.delete(found.id)
        audit_change(request, before=before)
