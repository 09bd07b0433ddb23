"""The ids of deleted replies, so that a replayed return bundle cannot store them again.

Ids only (random, chosen by the desk): no thread, no day. Replies deleted
before this revision are not listed; a bundle carrying one of them is still
accepted again (SECURITY.md weakness 30).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_replies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_replies")),
        sqlite_with_rowid=False,  # kept in random-id order, not in order of deletion
    )


def downgrade() -> None:
    op.drop_table("deleted_replies")
