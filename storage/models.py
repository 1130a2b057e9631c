"""SQLAlchemy 2.0 typed models, portable across SQLite and PostgreSQL.

Every change here needs a migration in storage/migrations/versions; the schema test
(alembic compare_metadata) fails when the two drift apart.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names: Alembic needs them to alter or drop constraints later,
# and SQLite batch migrations cannot recreate unnamed ones.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on Postgres for indexable, compact storage; plain JSON (text) on SQLite.
# none_as_null: a Python None is SQL NULL (IS NULL works), not the JSON literal 'null'.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Eight decimals keep per-call prices of a few tokens exact (graph rounds to 8 too); floats
# are out because these get summed.
Money = Numeric(16, 8, asdecimal=False)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and hands back naive values; storing UTC and re-attaching the
    zone on read keeps comparisons and ordering correct everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in TaskStatus)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        Index("ix_tasks_status_created_at", "status", "created_at"),
        # Keyset pagination without a status filter walks this index.
        Index("ix_tasks_created_at_id", "created_at", "id"),
        # The executor reclaims rows whose lease ran out.
        Index("ix_tasks_status_lease_expires_at", "status", "lease_expires_at"),
        # A thread's runs, oldest first: run listings and the one-run-at-a-time claim rule.
        Index("ix_tasks_thread_id_created_at", "thread_id", "created_at"),
        CheckConstraint("kind IN ('task', 'run')", name="kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # A task is a thread with one run; a thread of the LangGraph API has a row per run.
    thread_id: Mapped[str] = mapped_column(String(255))
    # 'task' (task API: request + params) or 'run' (LangGraph API: input/command + stream modes).
    kind: Mapped[str] = mapped_column(String(16), default="task", server_default="task")
    status: Mapped[str] = mapped_column(String(32), default=TaskStatus.QUEUED.value)
    request: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    intent: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Money, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Durable queue: a worker owns the row until lease_expires_at; run_count counts claims so
    # a task that keeps killing its worker can be failed instead of retried forever.
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    # Claims that took over a run which had stopped without ending (its lease ran out, or its
    # worker restarted): more than MAX_RESUMES fails the task instead of running it again.
    resume_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the next claim feeds the graph instead of its checkpoint alone: an approval decision
    # ({"resume": ..., "interrupt_id": ...}). Kept in the row so any worker can pick it up.
    pending_command: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # While the task awaits approval: the interrupt a reviewer answers (the draft on offer).
    pending_approval: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # LangGraph API run parameters, as the client sent them (validated); NULL for tasks.
    assistant_id: Mapped[str | None] = mapped_column(String(64), default=None)
    input: Mapped[Any | None] = mapped_column(JSONType, default=None)
    command: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    stream_modes: Mapped[list[Any] | None] = mapped_column(default=None)
    config: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    context: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    run_metadata: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    interrupt_before: Mapped[list[Any] | None] = mapped_column(default=None)
    interrupt_after: Mapped[list[Any] | None] = mapped_column(default=None)
    checkpoint_id: Mapped[str | None] = mapped_column(String(255), default=None)
    multitask_strategy: Mapped[str | None] = mapped_column(String(16), default=None)
    durability: Mapped[str | None] = mapped_column(String(16), default=None)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="task", cascade="all, delete-orphan", passive_deletes=True, order_by="Attempt.number"
    )
    usage: Mapped[list[Usage]] = relationship(
        back_populates="task", cascade="all, delete-orphan", passive_deletes=True, order_by="Usage.created_at"
    )
    events: Mapped[list[TaskEvent]] = relationship(
        back_populates="task", cascade="all, delete-orphan", passive_deletes=True, order_by="TaskEvent.id"
    )


class ThreadStatus(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class Thread(Base):
    """A LangGraph API thread: its checkpoints live in the saver, its runs in ``tasks``."""

    __tablename__ = "threads"
    __table_args__ = (
        CheckConstraint("status IN ('idle', 'busy', 'interrupted', 'error')", name="status"),
        Index("ix_threads_updated_at", "updated_at"),
    )

    thread_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ThreadStatus.IDLE.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("task_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    markdown: Mapped[str] = mapped_column(Text, default="")
    word_count: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    dimensions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    issues: Mapped[list[Any]] = mapped_column(default=list)
    suggestions: Mapped[list[Any]] = mapped_column(default=list)
    feedback: Mapped[str | None] = mapped_column(Text, default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[Task] = relationship(back_populates="attempts")


class Usage(Base):
    __tablename__ = "usage"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    node: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Money, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[Task] = relationship(back_populates="usage")


# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY; Postgres gets a
# 64-bit sequence because every token batch of every task takes an id.
EventId = BigInteger().with_variant(Integer(), "sqlite")
# The largest value a signed 64-bit column (BIGINT, SQLite's INTEGER) holds: an id, offset or
# count from a client past it cannot name a row, and the drivers raise instead of matching
# nothing, so the API refuses it first.
MAX_ROW_ID = 2**63 - 1


class TaskEvent(Base):
    """One progress event of a task. ``id`` is the SSE event id: increasing per database, so a
    client resumes with ``id > Last-Event-ID``."""

    __tablename__ = "task_events"
    __table_args__ = (
        Index("ix_task_events_task_id_id", "task_id", "id"),
        # AUTOINCREMENT: never reuse the ids of deleted rows, or a resuming client could skip events.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[Task] = relationship(back_populates="events")


class Role(enum.StrEnum):
    """Who may do what: each role includes everything the roles below it may do."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLE_RANKS[self]


ROLE_RANKS = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


class User(Base):
    """An account that can log in to the API. Only an argon2 hash of the password is stored."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="role"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RevokedToken(Base):
    """A logged-out token's id. Kept until the token would have expired anyway, so that every
    server process sharing the database refuses it."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


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


class Setting(Base):
    """A runtime setting an admin stored; keys without a row use their environment default."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Copies, not foreign keys: the record of who set a value outlives the account.
    updated_by: Mapped[str | None] = mapped_column(String(36), default=None)
    updated_by_name: Mapped[str | None] = mapped_column(String(64), default=None)


class SettingChange(Base):
    """One change of a setting. NULL old/new value means "not stored": the default applied."""

    __tablename__ = "settings_history"
    __table_args__ = (
        # A key's history newest first, keyset-paged by id.
        Index("ix_settings_history_key_id", "key", "id"),
        CheckConstraint("action IN ('set', 'rollback', 'reset')", name="action"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[Any | None] = mapped_column(JSONType, default=None)
    new_value: Mapped[Any | None] = mapped_column(JSONType, default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_name: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One mutation attempt through the HTTP API: who, what, on which resource, from where, and
    how it ended. Actor columns are copies, not foreign keys, so the trail outlives a deleted
    user; all are NULL for an anonymous caller (a failed login, a request without a token)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # Newest-first keyset pages, with or without a time window.
        Index("ix_audit_events_occurred_at_id", "occurred_at", "id"),
        Index("ix_audit_events_actor_id_occurred_at", "actor_id", "occurred_at"),
        Index("ix_audit_events_actor_name_occurred_at", "actor_name", "occurred_at"),
        Index("ix_audit_events_action_occurred_at", "action", "occurred_at"),
        Index("ix_audit_events_resource_resource_id", "resource", "resource_id"),
        Index("ix_audit_events_status_occurred_at", "status", "occurred_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(36), default=None)
    actor_name: Mapped[str | None] = mapped_column(String(64), default=None)
    actor_role: Mapped[str | None] = mapped_column(String(16), default=None)
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(255), default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    client: Mapped[str | None] = mapped_column(String(64), default=None)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)


class SlugCounter(Base):
    """The last number handed out for a generated slug base: 1 is "x" itself, 2 is "x-2"
    (storage/slugs.py)."""

    __tablename__ = "slug_counters"

    base: Mapped[str] = mapped_column(String(100), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
