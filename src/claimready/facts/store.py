"""Parquet fact files, partitioned by tenant and observed day, queried with DuckDB.

Layout: ``<facts_dir>/tenant=<id>/day=<YYYY-MM-DD>/e<evidence id>.parquet``.
A file counts only once the evidence row that lists it is committed; ingest
writes files first, commits, and removes them again if the commit fails.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from claimready.errors import StorageError
from claimready.facts.models import FactValue

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


@dataclass(frozen=True, slots=True)
class FactRow:
    """One fact with its asset resolved, ready to store."""

    asset_id: int
    signal: str
    value: FactValue
    observed_at: datetime


def _split_value(value: FactValue) -> tuple[bool | None, float | None, str | None, datetime | None]:
    if isinstance(value, bool):
        return value, None, None, None
    if isinstance(value, int | float):
        return None, float(value), None, None
    if isinstance(value, datetime):
        return None, None, None, value
    return None, None, value, None


def _table(
    rows: Sequence[FactRow], *, tenant_id: int, evidence_id: int, ledger_index: int | None
) -> pa.Table:
    columns: dict[str, list[object]] = {name: [] for name in FACT_SCHEMA.names}
    for row in rows:
        vb, vn, vt, vtime = _split_value(row.value)
        columns["tenant_id"].append(tenant_id)
        columns["asset_id"].append(row.asset_id)
        columns["signal"].append(row.signal)
        columns["value_bool"].append(vb)
        columns["value_num"].append(vn)
        columns["value_text"].append(vt)
        columns["value_time"].append(vtime)
        columns["observed_at"].append(row.observed_at)
        columns["evidence_id"].append(evidence_id)
        columns["ledger_index"].append(ledger_index)
    return pa.table(columns, schema=FACT_SCHEMA)


def write_facts(
    *,
    facts_dir: Path,
    tenant_id: int,
    evidence_id: int,
    ledger_index: int | None,
    rows: Sequence[FactRow],
) -> list[str]:
    """Write ``rows`` as one Parquet file per observed day; return paths relative to facts_dir.

    Each file is written to a temporary name, fsynced and renamed into place.
    """
    by_day: dict[str, list[FactRow]] = defaultdict(list)
    for row in rows:
        by_day[row.observed_at.date().isoformat()].append(row)
    written: list[str] = []
    try:
        for day in sorted(by_day):
            relative = f"tenant={tenant_id}/day={day}/e{evidence_id}.parquet"
            table = _table(
                by_day[day], tenant_id=tenant_id, evidence_id=evidence_id, ledger_index=ledger_index
            )
            _atomic_write_table(facts_dir / relative, table)
            written.append(relative)
    except OSError as exc:
        remove_files(facts_dir=facts_dir, files=written)
        raise StorageError(f"{facts_dir}: cannot write facts: {exc.strerror}") from exc
    return written


def _atomic_write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, temporary, compression="zstd")
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_files(*, facts_dir: Path, files: Iterable[str]) -> None:
    """Remove fact files written by an ingest that did not commit."""
    for relative in files:
        (facts_dir / relative).unlink(missing_ok=True)
