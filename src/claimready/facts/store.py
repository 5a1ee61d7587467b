"""Parquet fact files, partitioned by tenant and observed day, queried with DuckDB.

Layout: ``<facts_dir>/tenant=<id>/day=<YYYY-MM-DD>/<name>.parquet``. The
``fact_files`` table is the list of committed files: a file on disk that it
does not name (an ingest that failed or crashed before committing) is never
read. Many small ingests are merged by :func:`compact`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from claimready.db.engine import transaction
from claimready.errors import StorageError
from claimready.facts.models import Fact, FactColumns, FactFile, FactValue

log = logging.getLogger(__name__)
FACT_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.int64()),
        ("asset_id", pa.int64()),
        ("signal", pa.string()),
        ("value_bool", pa.bool_()),
        ("value_num", pa.float64()),
        ("value_text", pa.string()),
        ("value_time", pa.timestamp("us", tz="UTC")),
        ("observed_at", pa.timestamp("us", tz="UTC")),
        ("evidence_id", pa.int64()),
        ("ledger_index", pa.int64()),
    ]
)
ROW_GROUP_ROWS = 131_072
#: Compacted files are sorted by signal first, in row groups small enough that a query
#: for a few signals skips the others by their row groups' statistics.
COMPACT_ORDER = (("signal", "ascending"), ("asset_id", "ascending"), ("observed_at", "ascending"))
COMPACT_ROW_GROUP_ROWS = 16_384
COMPACT_MIN_FILES = 8
#: In a tenant's folder: the digest of the KEV catalog every snapshot file was last
#: found to cover (:func:`refresh_snapshots`).
KEV_CHECKED = "snapshots-kev.sha256"
#: Beside a compacted file, its snapshot counts and KEV matches (:mod:`claimready.facts.snapshots`).
SNAPSHOTS_SUFFIX = ".snapshots"
#: A month is merged into one file once it ended this long ago (late evidence settles).
MONTHS_SETTLE = timedelta(days=7)


class FactRow(NamedTuple):
    """One fact with its asset resolved, ready to store.

    A named tuple rather than a dataclass: ingest builds one per fact, and a
    batch of them transposes into columns in one step.
    """

    asset_id: int
    signal: str
    value: FactValue
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A fact file written to disk but not yet registered (facts of ``day`` to ``last_day``)."""

    day: date
    path: str
    rows: int
    last_day: date | None = None


_VALUE_NAMES = ("value_bool", "value_num", "value_text", "value_time")
# The value column of each plain value type; values of other types (subclasses) are checked.
_VALUE_COLUMNS: dict[type, str] = {
    bool: "value_bool",
    int: "value_num",
    float: "value_num",
    str: "value_text",
    datetime: "value_time",
}


def _plain_column(values: Sequence[FactValue], name: str, kinds: set[type]) -> Sequence[object]:
    """Column ``name`` when every value is exactly one of the plain types in ``kinds``."""
    if name == "value_num":
        if kinds == {float}:
            return values
        return [float(v) if type(v) is int or type(v) is float else None for v in values]
    if len(kinds) == 1:
        return values
    if name == "value_bool":
        return [v if v is True or v is False else None for v in values]
    wanted = str if name == "value_text" else datetime
    return [v if type(v) is wanted else None for v in values]


def _checked_column(values: Sequence[FactValue], name: str) -> list[object]:
    """Column ``name`` for values of any type, subclasses included."""
    if name == "value_bool":
        return [v if isinstance(v, bool) else None for v in values]
    if name == "value_num":
        return [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
            for v in values
        ]
    wanted = str if name == "value_text" else datetime
    return [v if isinstance(v, wanted) else None for v in values]


def _value_arrays(values: Sequence[FactValue]) -> list[pa.Array]:
    """The four value columns: each value fills the column of its type, the others are null."""
    kinds = set(map(type, values))
    plain = kinds <= _VALUE_COLUMNS.keys()
    filled = {_VALUE_COLUMNS[kind] for kind in kinds} if plain else set(_VALUE_NAMES)
    arrays: list[pa.Array] = []
    for name in _VALUE_NAMES:
        column_type = FACT_SCHEMA.field(name).type
        if name not in filled:
            arrays.append(pa.nulls(len(values), column_type))
        else:
            column = _plain_column(values, name, kinds) if plain else _checked_column(values, name)
            arrays.append(pa.array(column, type=column_type))
    return arrays


def _repeat(value: int | None, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.int64()), count)


def fact_table(
    rows: Sequence[FactRow], *, tenant_id: int, evidence_id: int, ledger_index: int | None
) -> pa.Table:
    """A Parquet-ready table of ``rows`` in :data:`FACT_SCHEMA`."""
    asset_ids, signals, values, observed = (list(map(itemgetter(i), rows)) for i in range(4))
    return _columns_table(
        asset_ids, signals, values, observed, (tenant_id, evidence_id, ledger_index)
    )


def _columns_table(
    asset_ids: Sequence[int],
    signals: Sequence[str],
    values: Sequence[FactValue],
    observed: Sequence[datetime],
    origin: tuple[int, int, int | None],
) -> pa.Table:
    """The table of facts given column by column; ``origin`` is (tenant, evidence, ledger index)."""
    count = len(asset_ids)
    tenant_id, evidence_id, ledger_index = origin
    arrays = [
        _repeat(tenant_id, count),
        pa.array(asset_ids, type=pa.int64()),
        pa.array(signals, type=pa.string()),
        *_value_arrays(values),
        pa.array(observed, type=FACT_SCHEMA.field("observed_at").type),
        _repeat(evidence_id, count),
        _repeat(ledger_index, count),
    ]
    return pa.Table.from_arrays(arrays, schema=FACT_SCHEMA)


def _fact_columns(
    facts: Sequence[Fact],
) -> tuple[Sequence[str], Sequence[str], Sequence[FactValue], Sequence[datetime]]:
    if isinstance(facts, FactColumns):
        return facts.asset_keys, facts.signals, facts.values, facts.observed_at
    keys, signals, values, observed = (list(map(itemgetter(i), facts)) for i in range(4))
    return keys, signals, values, observed


def _by_day(table: pa.Table) -> list[tuple[date, pa.Table]]:
    """The table's rows per observed (UTC) day, days in order of first appearance."""
    days = table.column("observed_at").cast(pa.date32())
    unique = pc.unique(days).to_pylist()
    if len(unique) == 1:
        return [(unique[0], table)]
    return [(day, table.filter(pc.equal(days, pa.scalar(day, pa.date32())))) for day in unique]


class FactWriter:
    """Writes one ingest's facts, one file per observed day, streaming in row groups."""

    def __init__(
        self, *, facts_dir: Path, tenant_id: int, evidence_id: int, ledger_index: int | None
    ) -> None:
        self.facts_dir = facts_dir
        self.tenant_id = tenant_id
        self.evidence_id = evidence_id
        self.ledger_index = ledger_index
        self._writers: dict[date, tuple[pq.ParquetWriter, Path, Path]] = {}
        self._rows: dict[date, int] = {}

    def add(self, rows: Sequence[FactRow]) -> None:
        """Append facts (any days, any order)."""
        if rows:
            self._write(
                fact_table(
                    rows,
                    tenant_id=self.tenant_id,
                    evidence_id=self.evidence_id,
                    ledger_index=self.ledger_index,
                )
            )

    def add_facts(self, facts: Sequence[Fact], asset_ids: Mapping[str, int]) -> None:
        """Append a connector's facts, each asset key resolved through ``asset_ids``.

        Facts given as :class:`FactColumns` go to Arrow column by column. A key
        that ``asset_ids`` does not hold raises KeyError with the key.
        """
        if not facts:
            return
        keys, signals, values, observed = _fact_columns(facts)
        ids = list(map(asset_ids.__getitem__, keys))
        origin = (self.tenant_id, self.evidence_id, self.ledger_index)
        self._write(_columns_table(ids, signals, values, observed, origin))

    def _write(self, table: pa.Table) -> None:
        try:
            for day, chunk in _by_day(table):
                self._writer(day).write_table(chunk, row_group_size=ROW_GROUP_ROWS)
                self._rows[day] = self._rows.get(day, 0) + chunk.num_rows
        except OSError as exc:
            self.abort()
            raise StorageError(f"{self.facts_dir}: cannot write facts: {exc.strerror}") from exc

    def _writer(self, day: date) -> pq.ParquetWriter:
        if day not in self._writers:
            folder = tenant_folder(facts_dir=self.facts_dir, tenant_id=self.tenant_id)
            name = f"e{self.evidence_id}-{uuid.uuid4().hex[:8]}.parquet"
            final = folder / f"day={day.isoformat()}" / name
            final.parent.mkdir(parents=True, exist_ok=True)
            temporary = final.with_name(f".{name}.tmp")
            writer = pq.ParquetWriter(temporary, FACT_SCHEMA, compression="zstd")
            self._writers[day] = (writer, temporary, final)
        return self._writers[day][0]

    def close(self) -> list[WrittenFile]:
        """Finish every file (fsynced and renamed into place); return them for registration."""
        written: list[WrittenFile] = []
        try:
            for day, (writer, temporary, final) in sorted(self._writers.items()):
                writer.close()
                _fsync_rename(temporary, final)
                relative = final.relative_to(self.facts_dir).as_posix()
                written.append(WrittenFile(day=day, path=relative, rows=self._rows[day]))
        except OSError as exc:
            self.abort()
            remove_files(facts_dir=self.facts_dir, files=[w.path for w in written])
            raise StorageError(f"{self.facts_dir}: cannot write facts: {exc.strerror}") from exc
        self._writers.clear()
        return written

    def abort(self) -> None:
        """Drop every file this writer started."""
        for writer, temporary, final in self._writers.values():
            with contextlib.suppress(OSError):
                writer.close()
            temporary.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
        self._writers.clear()


def _fsync_rename(temporary: Path, final: Path) -> None:
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    temporary.replace(final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def register(
    *, session: Session, tenant_id: int, files: Iterable[WrittenFile], evidence_count: int = 1
) -> None:
    """Record written files as committed facts (takes effect when the session commits)."""
    session.add_all(
        FactFile(
            tenant_id=tenant_id,
            day=f.day,
            last_day=f.last_day or f.day,
            path=f.path,
            rows=f.rows,
            evidence_count=evidence_count,
        )
        for f in files
    )


def remove_files(*, facts_dir: Path, files: Iterable[str]) -> None:
    """Remove fact files that were never registered, or that compaction replaced.

    Their snapshot files go with them, and a day's folder left empty goes too.
    """
    for relative in files:
        path = facts_dir / relative
        path.with_suffix(SNAPSHOTS_SUFFIX).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty, or already gone
            path.parent.rmdir()


class StoredFile(NamedTuple):
    """A committed fact file and the days of the facts it holds."""

    path: Path
    day: date
    last_day: date


def fact_files(
    *, session: Session, tenant_id: int, facts_dir: Path, until: datetime | None = None
) -> list[StoredFile]:
    """The tenant's committed fact files, optionally only those starting by ``until``."""
    query = select(FactFile.path, FactFile.day, FactFile.last_day).where(
        FactFile.tenant_id == tenant_id
    )
    if until is not None:
        query = query.where(FactFile.day <= until.date())
    rows = session.execute(query.order_by(FactFile.day, FactFile.id)).tuples()
    return [StoredFile(facts_dir / name, day, last) for name, day, last in rows]


def fact_paths(
    *, session: Session, tenant_id: int, facts_dir: Path, until: datetime | None = None
) -> list[Path]:
    """The tenant's committed fact files, optionally only those starting by ``until``."""
    found = fact_files(session=session, tenant_id=tenant_id, facts_dir=facts_dir, until=until)
    return [f.path for f in found]


def tenant_folder(*, facts_dir: Path, tenant_id: int) -> Path:
    """The folder holding a tenant's fact files."""
    return facts_dir / f"tenant={tenant_id}"


def compact(
    *,
    sessions: sessionmaker[Session],
    tenant_id: int,
    facts_dir: Path,
    day: date,
    min_files: int = COMPACT_MIN_FILES,
) -> int:
    """Merge a day's files into one when there are at least ``min_files``; return files merged."""
    with transaction(sessions) as session:
        rows = session.execute(
            select(FactFile.path, FactFile.evidence_count).where(
                FactFile.tenant_id == tenant_id, FactFile.day == day, FactFile.last_day == day
            )
        ).all()
    if len(rows) < min_files:
        return 0
    paths = [path for path, _ in rows]
    merged = pq.read_table([str(facts_dir / p) for p in paths], schema=FACT_SCHEMA)
    merged = merged.sort_by(list(COMPACT_ORDER))
    merged_rows = merged.num_rows
    relative = f"tenant={tenant_id}/day={day.isoformat()}/c-{uuid.uuid4().hex[:12]}.parquet"
    final = facts_dir / relative
    temporary = final.with_name(f".{final.name}.tmp")
    pq.write_table(merged, temporary, compression="zstd", row_group_size=COMPACT_ROW_GROUP_ROWS)
    _fsync_rename(temporary, final)
    del merged
    _write_snapshots(sessions=sessions, tenant_id=tenant_id, facts_dir=facts_dir, fact_file=final)
    written = WrittenFile(day=day, path=relative, rows=merged_rows)
    return _replace(
        sessions=sessions, tenant_id=tenant_id, facts_dir=facts_dir, merged=written, rows=rows
    )


def _replace(
    *,
    sessions: sessionmaker[Session],
    tenant_id: int,
    facts_dir: Path,
    merged: WrittenFile,
    rows: Sequence[Row[tuple[str, int]]],
) -> int:
    """Register a merged file in place of the files (path, evidence count) it holds.

    One transaction registers it and drops the others' rows; then they are
    unlinked. Should the transaction fail, the merged file goes instead.
    """
    paths = [path for path, _ in rows]
    try:
        with transaction(sessions) as session:
            session.execute(delete(FactFile).where(FactFile.path.in_(paths)))
            register(
                session=session,
                tenant_id=tenant_id,
                files=[merged],
                evidence_count=sum(count for _, count in rows),
            )
    except BaseException:
        remove_files(facts_dir=facts_dir, files=[merged.path])
        raise
    remove_files(facts_dir=facts_dir, files=paths)
    return len(paths)


def _write_snapshots(
    *, sessions: sessionmaker[Session], tenant_id: int, facts_dir: Path, fact_file: Path
) -> None:
    """Write a merged file's snapshot file, with the KEV catalog the tenant has now.

    Snapshot files only save time: one that cannot be written is left out, and
    evaluations read the facts instead.
    """
    from claimready.facts import snapshots  # builds on this module

    with transaction(sessions) as session:
        files = fact_paths(session=session, tenant_id=tenant_id, facts_dir=facts_dir)
    try:
        with connect_duckdb() as connection:
            catalog = _kev_catalog(connection, files, tenant_id, facts_dir)
            snapshots.write_snapshots(connection, fact_file=fact_file, kev=catalog)
    except (OSError, duckdb.Error, StorageError) as exc:
        log.warning("%s: no snapshot file: %s", fact_file, exc)


def refresh_snapshots(*, sessions: sessionmaker[Session], tenant_id: int, facts_dir: Path) -> int:
    """Rewrite the snapshot files that looked up fewer CVEs than the KEV catalog lists now.

    The catalog grows every week; a snapshot file written before it grew no
    longer stands for its facts in ``kev()``, so every evaluation would read
    those facts instead (the results are the same, only slower) until the month
    is merged again, which for a settled month is never. Returns how many were
    rewritten. One that cannot be is left as it is, with a warning.

    Every ingest calls this, so the catalog every snapshot file was found to
    cover is remembered (``KEV_CHECKED``, its digest): while the catalog stays
    the same, no snapshot file is opened. Files compacted meanwhile are written
    with the whole catalog of their moment, so they never need it.
    """
    from claimready.facts import snapshots  # builds on this module

    rewritten, current = 0, True
    with transaction(sessions) as session:
        files = fact_paths(session=session, tenant_id=tenant_id, facts_dir=facts_dir)
    if not files:
        return 0
    checked = tenant_folder(facts_dir=facts_dir, tenant_id=tenant_id) / KEV_CHECKED
    with connect_duckdb() as connection:
        try:
            catalog = frozenset(_kev_catalog(connection, files, tenant_id, facts_dir))
        except (OSError, duckdb.Error, StorageError) as exc:
            log.warning("tenant %s: snapshot files not refreshed: %s", tenant_id, exc)
            return 0
        digest = hashlib.sha256("\n".join(sorted(catalog)).encode()).hexdigest()
        with contextlib.suppress(OSError):
            if checked.read_text(encoding="ascii") == digest:
                return 0
        for path in files:
            covered = snapshots.covered(path)
            if covered is None or catalog <= covered.looked_up:
                continue
            try:
                snapshots.write_snapshots(connection, fact_file=path, kev=catalog)
            except (OSError, duckdb.Error) as exc:
                log.warning("%s: snapshot file not refreshed: %s", path, exc)
                current = False
                continue
            if not path.exists():  # merged away meanwhile: its snapshot file goes too
                snapshots.snapshot_path(path).unlink(missing_ok=True)
                continue
            rewritten += 1
    if current:
        _remember(checked, digest)
    return rewritten


def _remember(path: Path, text: str) -> None:
    """Write a small cache file whole or not at all (losing it costs only time)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="ascii")
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        log.warning("%s: not kept: %s", path, exc)


def _kev_catalog(
    connection: duckdb.DuckDBPyConnection, files: list[Path], tenant_id: int, facts_dir: Path
) -> list[str]:
    """Every CVE the tenant's KEV catalog lists, from the summary of its fact files
    (brought up to date on the way, as an evaluation would)."""
    from claimready.facts import snapshots, summary  # both build on this module

    kept = summary.summarize(
        connection,
        files=files,
        tenant_id=tenant_id,
        cache=tenant_folder(facts_dir=facts_dir, tenant_id=tenant_id),
    )
    keys: list[str] = (
        summary.first_of(kept, snapshots.KEV_SIGNAL).column("key").drop_null().to_pylist()
    )
    return keys


def crowded_days(
    *, session: Session, tenant_id: int, min_files: int = COMPACT_MIN_FILES
) -> list[date]:
    """Days of the tenant with at least ``min_files`` fact files."""
    query = (
        select(FactFile.day)
        .where(FactFile.tenant_id == tenant_id, FactFile.day == FactFile.last_day)
        .group_by(FactFile.day)
        .having(func.count() >= min_files)
        .order_by(FactFile.day)
    )
    return list(session.scalars(query))


def write_facts(
    *,
    facts_dir: Path,
    tenant_id: int,
    evidence_id: int,
    ledger_index: int | None,
    rows: Sequence[FactRow],
) -> list[WrittenFile]:
    """Write ``rows`` in one go (one file per observed day); register them to make them count."""
    writer = FactWriter(
        facts_dir=facts_dir, tenant_id=tenant_id, evidence_id=evidence_id, ledger_index=ledger_index
    )
    writer.add(rows)
    return writer.close()


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_files(files: Sequence[Path]) -> str:
    """A DuckDB list literal of file paths."""
    return "[" + ", ".join(sql_text(str(f)) for f in files) + "]"


def read_facts(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
) -> pa.Table:
    """Run a query over fact files; a file DuckDB cannot read is one line naming it."""
    try:
        return connection.execute(sql, list(params)).to_arrow_table()
    except duckdb.Error as exc:
        lines = str(exc).strip().splitlines()
        raise StorageError(
            f"cannot read the stored facts: {lines[0] if lines else type(exc).__name__}"
        ) from exc


def connect_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for reading facts: UTC, and quiet."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET enable_progress_bar = false")
    return connection


def parquet_sql(files: Sequence[Path]) -> str:
    """DuckDB SQL reading fact files: their own columns only, whatever folders they are in."""
    return f"read_parquet({sql_files(files)}, hive_partitioning = false)"


def _month_end(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return following - timedelta(days=1)


def months_to_merge(
    *, session: Session, tenant_id: int, before: date, min_files: int = COMPACT_MIN_FILES
) -> list[date]:
    """First days of the months ending before ``before`` with ``min_files`` day files or more."""
    query = select(FactFile.day).where(
        FactFile.tenant_id == tenant_id,
        FactFile.day == FactFile.last_day,
        FactFile.day < before.replace(day=1),
    )
    counts: dict[date, int] = {}
    for day in session.scalars(query):
        month = day.replace(day=1)
        counts[month] = counts.get(month, 0) + 1
    return sorted(m for m, n in counts.items() if n >= min_files and _month_end(m) < before)


def compact_month(
    *, sessions: sessionmaker[Session], tenant_id: int, facts_dir: Path, month: date
) -> int:
    """Merge every file of a past month into one spanning its days; return files merged.

    A tenant with a long history would otherwise keep a file per day, and every
    query over a year would open hundreds of them. The merge streams through
    DuckDB (sorted like a compacted day, in bounded memory), then commits the new
    file's row and drops the old ones in one transaction, then unlinks them.
    """
    first, last = month.replace(day=1), _month_end(month)
    with transaction(sessions) as session:
        rows = session.execute(
            select(FactFile.path, FactFile.evidence_count).where(
                FactFile.tenant_id == tenant_id,
                FactFile.day >= first,
                FactFile.last_day <= last,
            )
        ).all()
    if len(rows) < 2:
        return 0
    paths = [path for path, _ in rows]
    folder = tenant_folder(facts_dir=facts_dir, tenant_id=tenant_id)
    relative = f"month={first:%Y-%m}/c-{uuid.uuid4().hex[:12]}.parquet"
    final = folder / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.tmp")
    order = ", ".join(name for name, _ in COMPACT_ORDER)
    target = str(temporary)
    merged = parquet_sql([facts_dir / p for p in paths])
    try:
        with connect_duckdb() as connection:
            counted = connection.execute(
                f"COPY (SELECT * FROM {merged} ORDER BY {order}) TO {sql_text(target)} "  # noqa: S608
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {COMPACT_ROW_GROUP_ROWS})"
            ).fetchone()
        _fsync_rename(temporary, final)
    except (OSError, duckdb.Error) as exc:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"{facts_dir}: cannot merge the facts of {first:%Y-%m}: {exc}") from exc
    _write_snapshots(sessions=sessions, tenant_id=tenant_id, facts_dir=facts_dir, fact_file=final)
    written = WrittenFile(
        day=first,
        last_day=last,
        path=final.relative_to(facts_dir).as_posix(),
        rows=int(counted[0]) if counted else 0,
    )
    return _replace(
        sessions=sessions, tenant_id=tenant_id, facts_dir=facts_dir, merged=written, rows=rows
    )
