"""Scheduled runs (LangGraph API crons): a schedule and the run request each tick queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, JSONType, new_id, utcnow


class Cron(Base):
    __tablename__ = "crons"
    __table_args__ = (
        CheckConstraint("on_run_completed IN ('delete', 'keep') OR on_run_completed IS NULL",
                        name="on_run_completed"),
        # The schedulers' look for due crons walks this index.
        Index("ix_crons_enabled_next_run_date", "enabled", "next_run_date"),
        Index("ix_crons_created_at", "created_at"),
    )

    cron_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    assistant_id: Mapped[str] = mapped_column(String(255))
    # None: every tick runs on a new thread (a stateless cron).
    thread_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    schedule: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    # The run request each tick queues (assistant_id, input, config, context, webhook, ...).
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The run columns the payload makes (storage/tasks.py), checked when the cron was stored.
    run: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    on_run_completed: Mapped[str | None] = mapped_column(String(8), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None once the schedule has no tick before end_time.
    next_run_date: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
