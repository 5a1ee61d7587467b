"""First and last observation of every asset and signal: what scope and ``ever()`` need.

Deciding which assets existed at a moment, whether an asset was ever reported
with a signal, and when a CVE was first listed as known-exploited all need
every fact of the tenant, not only those near the moment asked about. A
summary holds, per asset, signal and (for the keyed signals ``kev.listed``
and ``asset.tag``) value, the first and last ``observed_at``.

Minimum and maximum merge idempotently, so the summary of a tenant is kept
in ``<facts_dir>/tenant=<id>/summary.arrow`` together with the names of the
fact files it covers: a later read scans only files it does not cover yet
(new ingests, or a compaction's merged file, whose facts it already holds)
and rewrites it atomically. Facts are never removed from the store except by
compaction, which keeps them in the merged file, so a covered file that has
gone takes nothing with it.

``allowed`` restricts the summary to facts of some evidence (an evaluation
of only what the ledger held before a moment); such a summary is computed
from the files and never kept.
"""

# SQL here names only generated file paths (quoted) and fixed signal names.
# ruff: noqa: S608

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from claimready.facts.store import parquet_sql, read_facts

KEYED_SIGNALS = ("kev.listed", "asset.tag")
_COVERED = b"claimready.covered"
SUMMARY_NAME = "summary.arrow"
SUMMARY_SCHEMA = pa.schema(
    [
        ("asset_id", pa.int64()),
        ("signal", pa.string()),
        ("key", pa.string()),
        ("first", pa.int64()),
        ("last", pa.int64()),
    ]
)


def _keyed() -> str:
    return ", ".join(f"'{s}'" for s in KEYED_SIGNALS)


def _scan(
    connection: duckdb.DuckDBPyConnection, files: Sequence[Path], tenant_id: int, by_evidence: bool
) -> pa.Table:
    evidence = ", evidence_id" if by_evidence else ""
    sql = (
        f"SELECT asset_id, signal, CASE WHEN signal IN ({_keyed()}) THEN value_text END AS key"
        f"{evidence}, epoch_us(min(observed_at)) AS first, epoch_us(max(observed_at)) AS last "
        f"FROM {parquet_sql(files)} WHERE tenant_id = {int(tenant_id)} GROUP BY ALL"
    )
    return read_facts(connection, sql)


def _reduce(table: pa.Table) -> pa.Table:
    """One row per asset, signal and key: the earliest first and latest last."""
    grouped = table.group_by(["asset_id", "signal", "key"], use_threads=False).aggregate(
        [("first", "min"), ("last", "max")]
    )
    return pa.table(
        [
            grouped["asset_id"],
            grouped["signal"],
            grouped["key"],
            grouped["first_min"],
            grouped["last_max"],
        ],
        schema=SUMMARY_SCHEMA,
    )


def _read(path: Path) -> tuple[pa.Table, set[str]] | None:
    try:
        with ipc.open_file(path) as reader:
            table = reader.read_all()
            metadata = reader.schema.metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    if table.schema.remove_metadata() != SUMMARY_SCHEMA:
        return None
    covered = json.loads(metadata.get(_COVERED, b"[]"))
    return table.replace_schema_metadata(None), set(covered)


def _write(path: Path, table: pa.Table, covered: set[str]) -> None:
    """Write atomically; a reader sees the old summary or the new one, never a mix."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    schema = SUMMARY_SCHEMA.with_metadata({_COVERED: json.dumps(sorted(covered)).encode()})
    try:
        with ipc.new_file(temporary, schema) as writer:
            writer.write_table(table.replace_schema_metadata(schema.metadata))
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a cache: failing to keep it costs only time


def summarize(
    connection: duckdb.DuckDBPyConnection,
    *,
    files: Sequence[Path],
    tenant_id: int,
    cache: Path | None,
    allowed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> pa.Table:
    """The tenant's summary (:data:`SUMMARY_SCHEMA`) over ``files``.

    ``cache`` is the tenant's folder of fact files (the summary is kept there);
    ``allowed`` maps an array of evidence ids to a mask of those to count.
    """
    if not files:
        return SUMMARY_SCHEMA.empty_table()
    if allowed is not None:
        table = _scan(connection, files, tenant_id, by_evidence=True)
        mask = allowed(table.column("evidence_id").to_numpy())
        return _reduce(table.drop_columns(["evidence_id"]).filter(pa.array(mask)))
    if cache is None:
        return _reduce(_scan(connection, files, tenant_id, by_evidence=False))
    path = cache / SUMMARY_NAME
    names = {f"{f.parent.name}/{f.name}": f for f in files}
    stored = _read(path)
    known, covered = stored if stored is not None else (SUMMARY_SCHEMA.empty_table(), set())
    missing = [f for name, f in names.items() if name not in covered]
    if not missing:
        return known
    table = _reduce(pa.concat_tables([known, _scan(connection, missing, tenant_id, False)]))
    _write(path, table, set(names))
    return table


def first_of(summary: pa.Table, signal: str) -> pa.Table:
    """Rows of one signal."""
    return summary.filter(pc.equal(summary.column("signal"), signal))
