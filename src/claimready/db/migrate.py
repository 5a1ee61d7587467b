"""Schema migrations with Alembic, run programmatically on an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from claimready.db.engine import first_line
from claimready.errors import StorageError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this version."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StorageError("no migrations are packaged")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise StorageError(f"cannot read the database: {first_line(exc)}") from exc


def upgrade(engine: Engine, *, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations up to ``revision``; return (revision before, revision after)."""
    before = current_revision(engine)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except DBAPIError as exc:
        raise StorageError(f"migration failed: {first_line(exc)}") from exc
    return before, current_revision(engine) or ""


def require_current(engine: Engine) -> None:
    """Raise a StorageError telling the user what to run unless the schema is up to date."""
    found = current_revision(engine)
    if found is None:
        raise StorageError("the database is not initialized; run: claimready init")
    if found != head_revision():
        raise StorageError(
            f"the database schema is at {found}, this version needs {head_revision()}; "
            "run: claimready upgrade"
        )
