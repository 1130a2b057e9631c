"""The task aggregate's tables: tasks (tasks and LangGraph API runs), threads, attempts, usage
and task events."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, EventId, JSONType, Money, new_id, utcnow


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
    # Where the end of the run is POSTed (checked when the run was created); NULL: nowhere.
    webhook: Mapped[str | None] = mapped_column(Text, default=None)

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
