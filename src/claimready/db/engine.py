"""Engines and sessions for the relational store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from claimready.errors import ConfigError, StorageError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` (SQLite with WAL and foreign keys, or PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            _ensure_parent_writable(Path(database))
        engine = create_engine(parsed, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg",):
            raise ConfigError(
                f"database URL uses driver {parsed.get_driver_name()!r}; "
                "use postgresql+psycopg://user@host:port/dbname"
            )
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"database backend {backend!r} is not supported; use sqlite or postgresql")


def _ensure_parent_writable(path: Path) -> None:
    parent = path.expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{parent}: cannot create data directory: {exc.strerror}") from exc
    probe = parent / ".claimready-write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"{parent}: data directory is not writable: {exc.strerror}") from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def first_line(exc: DBAPIError) -> str:
    """The driver's message without SQL or traceback lines, for a one-line error."""
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed if the block succeeds, rolled back otherwise."""
    session = factory()
    try:
        with session.begin():
            yield session
    except DBAPIError as exc:
        raise StorageError(f"database error: {first_line(exc)}") from exc
    finally:
        session.close()
