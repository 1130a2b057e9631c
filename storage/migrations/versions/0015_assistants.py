"""LangGraph API assistants and their versions, with the built-in assistant of the one graph.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: migrations must not change when models.py does.
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
# The built-in assistant: uuid5 of the graph id in langgraph-api's namespace
# (app.engine.api_runs.ASSISTANT_ID), frozen here as migrations must be.
BUILTIN = {
    "assistant_id": "10fe4994-a5f9-58ca-8ce0-9df32262dd84",
    "graph_id": "draftloop",
    "name": "draftloop",
    "description": "Draftloop content pipeline: route, research, draft, critique, approve, persist.",
    "metadata": {"created_by": "system"},
    "config": {},
    "context": {},
    "created_at": datetime(2025, 1, 1, tzinfo=UTC),
}


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("graph_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("context", JSON_TYPE, nullable=False),
    ]


def upgrade() -> None:
    assistants = op.create_table(
        "assistants",
        sa.Column("assistant_id", sa.String(36), nullable=False),
        *_columns(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("assistant_id", name="pk_assistants"),
    )
    op.create_index("ix_assistants_created_at", "assistants", ["created_at"])
    versions = op.create_table(
        "assistant_versions",
        sa.Column("assistant_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_columns(),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("assistant_id", "version", name="pk_assistant_versions"),
        sa.ForeignKeyConstraint(["assistant_id"], ["assistants.assistant_id"], ondelete="CASCADE",
                                name="fk_assistant_versions_assistant_id_assistants"),
    )
    op.bulk_insert(assistants, [{**BUILTIN, "version": 1, "updated_at": BUILTIN["created_at"]}])
    op.bulk_insert(versions, [{**BUILTIN, "version": 1}])


def downgrade() -> None:
    op.drop_table("assistant_versions")
    op.drop_index("ix_assistants_created_at", table_name="assistants")
    op.drop_table("assistants")
