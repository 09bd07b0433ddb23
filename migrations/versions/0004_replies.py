"""Replies sealed on the desk, stored for the submitters they are addressed to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("read_on", sa.Date(), nullable=True),
        sa.CheckConstraint("size > 0", name=op.f("ck_replies_size_positive")),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_replies_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sqlite_with_rowid=False,  # kept in random-id order, not in order of arrival
    )
    op.create_index(op.f("ix_replies_thread_id"), "replies", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_replies_thread_id"), table_name="replies")
    op.drop_table("replies")
