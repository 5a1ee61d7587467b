"""fact files registry replaces the per-evidence list of fact files

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from alembic import op

import claimready.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fact_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("created_at", claimready.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_fact_files_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_files")),
        sa.UniqueConstraint("path", name=op.f("uq_fact_files_path")),
    )
    with op.batch_alter_table("fact_files", schema=None) as batch_op:
        batch_op.create_index("ix_fact_files_tenant_day", ["tenant_id", "day"], unique=False)
    _move_file_lists()
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("facts_files")


def _move_file_lists() -> None:
    """Register the files that evidence rows listed (layout tenant=<id>/day=<date>/...)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT tenant_id, fact_count, stored_at, facts_files FROM evidence")
    ).all()
    for tenant_id, fact_count, stored_at, files in rows:
        names = json.loads(files) if isinstance(files, str) else (files or [])
        for name in names:
            day = date.fromisoformat(name.split("day=", 1)[1].split("/", 1)[0])
            connection.execute(
                sa.text(
                    "INSERT INTO fact_files (tenant_id, day, path, rows, evidence_count, created_at)"
                    " VALUES (:tenant_id, :day, :path, :rows, 1, :created_at)"
                ),
                {
                    "tenant_id": tenant_id,
                    "day": day,
                    "path": name,
                    "rows": fact_count if len(names) == 1 else 0,
                    "created_at": stored_at,
                },
            )


def downgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("facts_files", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("fact_files", schema=None) as batch_op:
        batch_op.drop_index("ix_fact_files_tenant_day")
    op.drop_table("fact_files")
