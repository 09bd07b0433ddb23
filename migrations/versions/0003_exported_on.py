"""The day a submission was last exported (a day only), for the staff dashboard.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("exported_on", sa.Date(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table: keep it a WITHOUT ROWID table.
    with op.batch_alter_table("submissions", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_column("exported_on")
