"""CMS posts and the counters that number their generated slugs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, new_id, utcnow


class PostStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Post(Base):
    """A CMS post. NULL excerpt/SEO fields mean "derive on read".

    The body's HTML, word count and derived excerpt are rendered once per write of its markdown
    and stored with the version of the renderer that made them (app/content_html.py); a read
    renders them again only when they are missing (a post from before they were stored, or
    written by a path that could not render) or of another version (a tightened sanitiser)."""

    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("slug"),
        # A task makes at most one post: finalize re-runs find it here instead of adding another.
        UniqueConstraint("task_id"),
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
        Index("ix_posts_status_created_at", "status", "created_at"),
        Index("ix_posts_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(String(100))
    # Set by a person: a title change no longer regenerates it.
    custom_slug: Mapped[bool] = mapped_column(Boolean, default=False)
    markdown: Mapped[str] = mapped_column(Text, default="")
    # All four set together, from the markdown as it is; all NULL when they must be rendered.
    html: Mapped[str | None] = mapped_column(Text, default=None)
    word_count: Mapped[int | None] = mapped_column(Integer, default=None)
    body_excerpt: Mapped[str | None] = mapped_column(Text, default=None)
    rendered_version: Mapped[int | None] = mapped_column(Integer, default=None)
    excerpt: Mapped[str | None] = mapped_column(Text, default=None)
    featured_image: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    sources: Mapped[list[Any]] = mapped_column(default=list)
    seo_title: Mapped[str | None] = mapped_column(String(60), default=None)
    meta_description: Mapped[str | None] = mapped_column(String(160), default=None)
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=PostStatus.DRAFT.value)
    # NULL for posts the graph wrote, and after the author's account is deleted.
    author_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None)


class SlugCounter(Base):
    """The last number handed out for a generated slug base: 1 is "x" itself, 2 is "x-2"
    (storage/slugs.py)."""

    __tablename__ = "slug_counters"

    base: Mapped[str] = mapped_column(String(100), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
