"""Audit events: who changed what, when, from where.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: migrations must not change when models.py does.
TIMESTAMP = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_INDEXES = {
    "ix_audit_events_occurred_at_id": ["occurred_at", "id"],
    "ix_audit_events_actor_id_occurred_at": ["actor_id", "occurred_at"],
    "ix_audit_events_actor_name_occurred_at": ["actor_name", "occurred_at"],
    "ix_audit_events_action_occurred_at": ["action", "occurred_at"],
    "ix_audit_events_resource_resource_id": ["resource", "resource_id"],
    "ix_audit_events_status_occurred_at": ["status", "occurred_at"],
}


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("actor_id", sa.String(36), nullable=True),
        sa.Column("actor_name", sa.String(64), nullable=True),
        sa.Column("actor_role", sa.String(16), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("summary", JSON_TYPE, nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sqlite_autoincrement=True,
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, "audit_events", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="audit_events")
    op.drop_table("audit_events")
