"""A post's body rendered once per write: its HTML, word count and derived excerpt, with the
version of the renderer that made them. Existing posts get them on their first read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("word_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("body_excerpt", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rendered_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("rendered_version")
        batch.drop_column("body_excerpt")
        batch.drop_column("word_count")
        batch.drop_column("html")
