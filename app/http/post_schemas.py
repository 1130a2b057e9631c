"""Request and response bodies of the posts API.

Every text field is stored as given; only ``html`` (the body) and ``title_html`` are markup, and
both are safe to insert into a page. Other fields are plain text for the client to escape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.content_html import RENDER_VERSION, RenderedBody, escape_text
from graph import markdown as md
from graph.state import MAX_KEYWORDS
from storage.models import MAX_ROW_ID, Post
from storage.posts import SLUG_MAX_CHARS, SLUG_PATTERN

PostStatusName = Literal["draft", "published", "archived"]
MAX_TITLE_CHARS = 300
# A 5000-word draft is ~35k characters. The cap bounds the render's input; its CPU budget
# (app/markdown_renderer.py) bounds what a body under the cap may cost.
MAX_MARKDOWN_CHARS = 100_000
MAX_SOURCES = 100


def _web_url(value: str) -> str:
    # Links and image URLs end up in readers' pages: nothing but http(s) to a real host.
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


WebUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_web_url)]
Slug = Annotated[str, Field(min_length=1, max_length=SLUG_MAX_CHARS, pattern=SLUG_PATTERN.pattern,
                            description="lowercase letters, digits and single hyphens, e.g. async-python-2")]
# Stripped one by one: the markdown body keeps its whitespace (leading spaces are syntax there).
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)]
Markdown = Annotated[str, Field(max_length=MAX_MARKDOWN_CHARS)]
Excerpt = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1_000)]
SeoTitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)]
MetaDescription = Annotated[str, StringConstraints(strip_whitespace=True, max_length=160)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class FeaturedImage(BaseModel):
    """The shape research gives a Pexels photo; ``url`` is the page to credit, ``src`` the file."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    url: WebUrl
    src: WebUrl | None = None
    alt: str = Field(default="", max_length=500)
    photographer: str | None = Field(default=None, max_length=200)
    photographer_url: WebUrl | None = None
    width: int | None = Field(default=None, ge=1, le=100_000)
    height: int | None = Field(default=None, ge=1, le=100_000)
    credit: str | None = Field(default=None, max_length=300)
    # Pexels ids are integers; other sources may name theirs.
    id: Annotated[int, Field(ge=0, le=MAX_ROW_ID)] | Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="the source's id of the photo",
        # Litestar draws a union's members without their bounds: stated here instead.
        json_schema_extra={"oneOf": [{"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID},
                                     {"type": "string", "maxLength": 100}, {"type": "null"}]})


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    url: WebUrl
    title: str = Field(default="", max_length=500)
    snippet: str = Field(default="", max_length=2_000)
    kind: str | None = Field(default=None, max_length=32)
    date: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=200)
    price: str | None = Field(default=None, max_length=64)


class PostCreate(BaseModel):
    """A new post. Without ``slug`` one is made from the title (``-2``, ``-3``... on a clash);
    without ``excerpt`` or SEO fields they are derived from the body and title on every read."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: Title
    markdown: Markdown = ""
    slug: Slug | None = None
    excerpt: Excerpt | None = None
    featured_image: FeaturedImage | None = None
    sources: list[Source] = Field(default_factory=list, max_length=MAX_SOURCES)
    seo_title: SeoTitle | None = None
    meta_description: MetaDescription | None = None
    keywords: list[Keyword] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    status: PostStatusName = "draft"


# Fields a PATCH may not set to null (the others: null means "derive it" or "none").
_NOT_NULL = ("title", "markdown", "sources", "keywords", "status")


class PostUpdate(BaseModel):
    """Only the fields sent change. ``slug: null`` makes the slug follow the title again."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: Title | None = None
    markdown: Markdown | None = None
    slug: Slug | None = None
    excerpt: Excerpt | None = None
    featured_image: FeaturedImage | None = None
    sources: list[Source] | None = Field(default=None, max_length=MAX_SOURCES)
    seo_title: SeoTitle | None = None
    meta_description: MetaDescription | None = None
    keywords: list[Keyword] | None = Field(default=None, max_length=MAX_KEYWORDS)
    status: PostStatusName | None = None

    @model_validator(mode="after")
    def _required_fields_are_not_null(self) -> PostUpdate:
        nulls = [name for name in _NOT_NULL if name in self.model_fields_set and getattr(self, name) is None]
        if nulls:
            others = f" (nor may {', '.join(nulls[1:])})" if len(nulls) > 1 else ""
            raise ValueError(f"{nulls[0]}: may be left out but not null{others}")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def post_links(post: Post) -> dict[str, str]:
    return {"self": f"/api/posts/{post.id}", "by_slug": f"/api/posts/by-slug/{post.slug}"}


def stored_rendering(post: Post) -> RenderedBody | None:
    """The post's stored rendering, when it has one made by this version of the renderer."""
    if (post.rendered_version != RENDER_VERSION or post.html is None or post.word_count is None
            or post.body_excerpt is None):
        return None
    return RenderedBody(post.html, post.word_count, post.body_excerpt, post.rendered_version)


def post_body(post: Post, rendered: RenderedBody, *, full: bool) -> dict[str, Any]:
    """The post as the API shows it, with its body's sanitised HTML; ``full`` adds the
    internal links (author and task ids) that anonymous readers have no use for. Nothing here
    reads the markdown: a page of long posts costs no more than a page of short ones."""
    excerpt = post.excerpt if post.excerpt is not None else rendered.excerpt
    words = rendered.word_count
    body: dict[str, Any] = {
        "id": post.id,
        "slug": post.slug,
        "status": post.status,
        "title": post.title,
        "title_html": escape_text(post.title),
        "markdown": post.markdown,
        "html": rendered.html,
        "excerpt": excerpt,
        "word_count": words,
        "reading_minutes": md.reading_minutes(words),
        "featured_image": post.featured_image,
        "sources": post.sources or [],
        "seo": {
            "seo_title": post.seo_title or md.clip(post.title, 60),
            "meta_description": post.meta_description or md.clip(excerpt, 160),
            "keywords": post.keywords or [],
        },
        "created_at": _iso(post.created_at),
        "updated_at": _iso(post.updated_at),
        "published_at": _iso(post.published_at),
        "links": post_links(post),
    }
    if full:
        body["author_id"] = post.author_id
        body["task_id"] = post.task_id
        body["custom_slug"] = post.custom_slug
    return body
