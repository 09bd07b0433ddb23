"""Threads and submissions: the only rows the source interface keeps.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lookup_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reply_public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threads")),
        sa.UniqueConstraint("lookup_digest", name=op.f("uq_threads_lookup_digest")),
        sqlite_with_rowid=False,  # kept in random-id order, not in order of arrival
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column(
            "sealed_by",
            sa.Enum(
                "browser",
                "server",
                name="sealed_by",
                native_enum=False,
                create_constraint=True,
                length=7,
            ),
            nullable=False,
        ),
        sa.Column("padded_size", sa.BigInteger(), nullable=False),
        sa.Column("envelope_size", sa.BigInteger(), nullable=False),
        sa.Column("recipient_key_ids", sa.String(length=527), nullable=False),
        sa.CheckConstraint(
            "envelope_size > padded_size",
            name=op.f("ck_submissions_envelope_size_above_padded"),
        ),
        sa.CheckConstraint("padded_size > 0", name=op.f("ck_submissions_padded_size_positive")),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_submissions_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_submissions_thread_id"), "submissions", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_submissions_thread_id"), table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("threads")
