"""A counter per generated slug base, so same-titled posts are numbered without a lock.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Starts empty: the first clash on a base that existing posts already use moves its counter
    # past them (storage/slugs.py), so nothing needs back-filling.
    op.create_table(
        "slug_counters",
        sa.Column("base", sa.String(100), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("base", name="pk_slug_counters"),
    )


def downgrade() -> None:
    op.drop_table("slug_counters")
