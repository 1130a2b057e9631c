"""Runtime settings registry values and their change history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: migrations must not change when models.py does.
TIMESTAMP = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
HISTORY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", JSON_TYPE, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(36), nullable=True),
        sa.Column("updated_by_name", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )
    op.create_table(
        "settings_history",
        sa.Column("id", HISTORY_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_value", JSON_TYPE, nullable=True),
        sa.Column("new_value", JSON_TYPE, nullable=True),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("user_name", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settings_history"),
        sa.CheckConstraint("action IN ('set', 'rollback', 'reset')", name="ck_settings_history_action"),
        # AUTOINCREMENT: ids never reused, so a rollback target stays what it was.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_settings_history_key_id", "settings_history", ["key", "id"])


def downgrade() -> None:
    op.drop_index("ix_settings_history_key_id", table_name="settings_history")
    op.drop_table("settings_history")
    op.drop_table("settings")
