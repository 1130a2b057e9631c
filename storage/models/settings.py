"""Runtime settings an admin stored, and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, EventId, JSONType, utcnow


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
