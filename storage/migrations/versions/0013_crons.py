"""Scheduled runs: the crons table (LangGraph API crons).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: migrations must not change when models.py does.
TIMESTAMP = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "crons",
        sa.Column("cron_id", sa.String(36), nullable=False),
        sa.Column("assistant_id", sa.String(255), nullable=False),
        sa.Column("thread_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("end_time", TIMESTAMP, nullable=True),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("run", JSON_TYPE, nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("on_run_completed", sa.String(8), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_date", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("cron_id", name="pk_crons"),
        sa.CheckConstraint("on_run_completed IN ('delete', 'keep') OR on_run_completed IS NULL",
                           name="ck_crons_on_run_completed"),
    )
    op.create_index("ix_crons_enabled_next_run_date", "crons", ["enabled", "next_run_date"])
    op.create_index("ix_crons_created_at", "crons", ["created_at"])
    op.create_index("ix_crons_thread_id", "crons", ["thread_id"])


def downgrade() -> None:
    op.drop_index("ix_crons_thread_id", table_name="crons")
    op.drop_index("ix_crons_created_at", table_name="crons")
    op.drop_index("ix_crons_enabled_next_run_date", table_name="crons")
    op.drop_table("crons")
