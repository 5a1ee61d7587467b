"""Parquet fact files, partitioned by tenant and observed day, queried with DuckDB.

Layout: ``<facts_dir>/tenant=<id>/day=<YYYY-MM-DD>/<name>.parquet``. The
``fact_files`` table is the list of committed files: a file on disk that it
does not name (an ingest that failed or crashed before committing) is never
read. Many small ingests are merged by :func:`compact`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from claimready.db.engine import transaction
from claimready.errors import StorageError
from claimready.facts.models import FactFile, FactValue

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
COMPACT_MIN_FILES = 8


@dataclass(frozen=True, slots=True)
class FactRow:
    """One fact with its asset resolved, ready to store."""

    asset_id: int
    signal: str
    value: FactValue
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A fact file written to disk but not yet registered."""

    day: date
    path: str
    rows: int


def _columns(rows: Sequence[FactRow]) -> dict[str, list[object]]:
    values = [r.value for r in rows]
    return {
        "asset_id": [r.asset_id for r in rows],
        "signal": [r.signal for r in rows],
        "value_bool": [v if isinstance(v, bool) else None for v in values],
        "value_num": [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
            for v in values
        ],
        "value_text": [v if isinstance(v, str) else None for v in values],
        "value_time": [v if isinstance(v, datetime) else None for v in values],
        "observed_at": [r.observed_at for r in rows],
    }


def fact_table(
    rows: Sequence[FactRow], *, tenant_id: int, evidence_id: int, ledger_index: int | None
) -> pa.Table:
    """A Parquet-ready table of ``rows`` in :data:`FACT_SCHEMA`."""
    columns = _columns(rows)
    count = len(rows)
    arrays = [
        pa.repeat(pa.scalar(tenant_id, pa.int64()), count)
        if name == "tenant_id"
        else pa.repeat(pa.scalar(evidence_id, pa.int64()), count)
        if name == "evidence_id"
        else pa.repeat(pa.scalar(ledger_index, pa.int64()), count)
        if name == "ledger_index"
        else pa.array(columns[name], type=FACT_SCHEMA.field(name).type)
        for name in FACT_SCHEMA.names
    ]
    return pa.Table.from_arrays(arrays, schema=FACT_SCHEMA)


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
        by_day: dict[date, list[FactRow]] = {}
        for row in rows:
            by_day.setdefault(row.observed_at.date(), []).append(row)
        try:
            for day, chunk in by_day.items():
                table = fact_table(
                    chunk,
                    tenant_id=self.tenant_id,
                    evidence_id=self.evidence_id,
                    ledger_index=self.ledger_index,
                )
                self._writer(day).write_table(table, row_group_size=ROW_GROUP_ROWS)
                self._rows[day] = self._rows.get(day, 0) + len(chunk)
        except OSError as exc:
            self.abort()
            raise StorageError(f"{self.facts_dir}: cannot write facts: {exc.strerror}") from exc

    def _writer(self, day: date) -> pq.ParquetWriter:
        if day not in self._writers:
            relative = Path(f"tenant={self.tenant_id}/day={day.isoformat()}")
            name = f"e{self.evidence_id}-{uuid.uuid4().hex[:8]}.parquet"
            final = self.facts_dir / relative / name
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
            tenant_id=tenant_id, day=f.day, path=f.path, rows=f.rows, evidence_count=evidence_count
        )
        for f in files
    )


def remove_files(*, facts_dir: Path, files: Iterable[str]) -> None:
    """Remove fact files that were never registered, or that compaction replaced."""
    for relative in files:
        (facts_dir / relative).unlink(missing_ok=True)


def fact_paths(
    *, session: Session, tenant_id: int, facts_dir: Path, until: datetime | None = None
) -> list[Path]:
    """The tenant's committed fact files, optionally only days up to ``until``."""
    query = select(FactFile.path).where(FactFile.tenant_id == tenant_id)
    if until is not None:
        query = query.where(FactFile.day <= until.date())
    return [facts_dir / name for name in session.scalars(query.order_by(FactFile.day, FactFile.id))]


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
                FactFile.tenant_id == tenant_id, FactFile.day == day
            )
        ).all()
    if len(rows) < min_files:
        return 0
    paths = [path for path, _ in rows]
    merged = pq.read_table([str(facts_dir / p) for p in paths], schema=FACT_SCHEMA)
    merged = merged.sort_by(
        [("asset_id", "ascending"), ("signal", "ascending"), ("observed_at", "ascending")]
    )
    relative = f"tenant={tenant_id}/day={day.isoformat()}/c-{uuid.uuid4().hex[:12]}.parquet"
    final = facts_dir / relative
    temporary = final.with_name(f".{final.name}.tmp")
    pq.write_table(merged, temporary, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    _fsync_rename(temporary, final)
    try:
        with transaction(sessions) as session:
            session.execute(delete(FactFile).where(FactFile.path.in_(paths)))
            register(
                session=session,
                tenant_id=tenant_id,
                files=[WrittenFile(day=day, path=relative, rows=merged.num_rows)],
                evidence_count=sum(count for _, count in rows),
            )
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    remove_files(facts_dir=facts_dir, files=paths)
    return len(paths)


def crowded_days(
    *, session: Session, tenant_id: int, min_files: int = COMPACT_MIN_FILES
) -> list[date]:
    """Days of the tenant with at least ``min_files`` fact files."""
    query = (
        select(FactFile.day)
        .where(FactFile.tenant_id == tenant_id)
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
