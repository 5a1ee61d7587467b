"""Alembic environment: runs on the connection claimready hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from claimready.db.models import Base

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    """Run migrations inside the caller's transaction."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("claimready migrations run through claimready init / claimready upgrade")
run_migrations(_connection)
