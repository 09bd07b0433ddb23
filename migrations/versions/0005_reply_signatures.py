"""The desk's signature on each reply, checked by the submitter's reader before it is shown.

Replies stored before this revision have none (NULL): readers refuse them as unverified.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replies") as batch:
        batch.add_column(sa.Column("signature", sa.LargeBinary(length=64), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table: keep it a WITHOUT ROWID table.
    with op.batch_alter_table("replies", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_column("signature")
