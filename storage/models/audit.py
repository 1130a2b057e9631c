"""The audit trail of mutations through the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, EventId, utcnow


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
