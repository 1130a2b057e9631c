"""LangGraph API runs and threads: run columns on tasks, thread_id no longer unique, threads.

A task is a thread with one run; a LangGraph API thread has one tasks row per run.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: migrations must not change when models.py does.
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

_RUN_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("assistant_id", sa.String(64)),
    ("input", JSON_TYPE),
    ("command", JSON_TYPE),
    ("stream_modes", JSON_TYPE),
    ("config", JSON_TYPE),
    ("context", JSON_TYPE),
    ("run_metadata", JSON_TYPE),
    ("interrupt_before", JSON_TYPE),
    ("interrupt_after", JSON_TYPE),
    ("checkpoint_id", sa.String(255)),
    ("multitask_strategy", sa.String(16)),
    ("durability", sa.String(16)),
)


def upgrade() -> None:
    # Batch mode: SQLite cannot drop a constraint in place, so the table is recreated.
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("uq_tasks_thread_id", type_="unique")
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="task"))
        for name, type_ in _RUN_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.create_check_constraint("kind", "kind IN ('task', 'run')")
    op.create_index("ix_tasks_thread_id_created_at", "tasks", ["thread_id", "created_at"])

    op.create_table(
        "threads",
        sa.Column("thread_id", sa.String(255), nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("thread_id", name="pk_threads"),
        sa.CheckConstraint("status IN ('idle', 'busy', 'interrupted', 'error')", name="ck_threads_status"),
    )
    op.create_index("ix_threads_updated_at", "threads", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_threads_updated_at", table_name="threads")
    op.drop_table("threads")
    op.drop_index("ix_tasks_thread_id_created_at", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("ck_tasks_kind", type_="check")
        for name, _type in reversed(_RUN_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("kind")
        batch.create_unique_constraint("uq_tasks_thread_id", ["thread_id"])
