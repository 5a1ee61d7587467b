"""fact files cover a span of days: a compacted month is one file

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fact_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_day", sa.Date(), nullable=True))
    op.execute("UPDATE fact_files SET last_day = day")
    with op.batch_alter_table("fact_files", schema=None) as batch_op:
        batch_op.alter_column("last_day", existing_type=sa.Date(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("fact_files", schema=None) as batch_op:
        batch_op.drop_column("last_day")
