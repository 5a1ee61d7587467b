"""Migrations build the whole schema on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from claimready.db.engine import make_engine
from claimready.db.migrate import current_revision, head_revision, require_current, upgrade
from claimready.db.models import Base
from claimready.errors import ConfigError, StorageError


def test_upgrade_builds_an_empty_database_matching_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(StorageError, match="claimready init"):
            require_current(engine)
        before, after = upgrade(engine)
        assert before is None
        assert after == head_revision() == current_revision(engine)
        require_current(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"tenants", "sources", "assets", "asset_identifiers", "evidence"} <= tables
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert upgrade(engine) == (after, after)
    finally:
        engine.dispose()


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/db", "not supported"),
        ("postgresql+asyncpg://u@h/db", "postgresql\\+psycopg"),
        ("not a url", "not a valid"),
    ],
)
def test_unsupported_database_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_engine(url)


def test_upgrade_from_0001_keeps_fact_files_of_existing_evidence(database_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(database_url)
    try:
        upgrade(engine, revision="0001")
        now = "2026-01-02 03:04:05"
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, timezone, created_at)"
                    " VALUES (1, 'acme', 'Acme', 'UTC', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO sources (id, tenant_id, kind, name, created_at)"
                    " VALUES (1, 1, 'defender', 'defender', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO evidence (id, tenant_id, source_id, sha256, size, media_type,"
                    " original_name, connector, connector_version, collector, collected_at,"
                    " stored_at, observed_to, observed_origin, record_count, fact_count,"
                    " facts_files, warnings) VALUES (1, 1, 1, :sha, 10, 'application/json',"
                    " 'm.json', 'defender', '1.0', 'me', :now, :now, :now, 'content', 2, 8,"
                    " :files, '[]')"
                ),
                {
                    "sha": "a" * 64,
                    "now": now,
                    "files": '["tenant=1/day=2026-01-01/e1.parquet"]',
                },
            )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT tenant_id, day, path, rows FROM fact_files")
            ).all()
        assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
            (1, "2026-01-01", "tenant=1/day=2026-01-01/e1.parquet", 8)
        ]
    finally:
        engine.dispose()


def test_an_unreachable_database_is_a_one_line_storage_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    try:
        with pytest.raises(StorageError, match="cannot read the database") as raised:
            upgrade(engine)
        assert "\n" not in str(raised.value)
    finally:
        engine.dispose()
