"""Read facts back with DuckDB: the facts of a tenant, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from claimready.facts.models import FactValue, StoredFact
from claimready.facts.store import connect_duckdb, read_facts


def _value(row: dict[str, object]) -> FactValue:
    for column in ("value_bool", "value_num", "value_text", "value_time"):
        value = row[column]
        if value is not None:
            return value  # type: ignore[return-value]
    raise ValueError(f"fact of asset {row['asset_id']} signal {row['signal']} has no value")


_LIST_SQL = """
SELECT asset_id, signal, value_bool, value_num, value_text, value_time,
       observed_at, evidence_id, ledger_index
FROM read_parquet(?, hive_partitioning = false)
WHERE tenant_id = ?
  AND (? IS NULL OR asset_id = ?)
  AND (? IS NULL OR signal = ? OR starts_with(signal, ? || '.'))
ORDER BY observed_at DESC, asset_id, signal
LIMIT ?
"""


def list_facts(
    *,
    files: Sequence[Path],
    tenant_id: int,
    asset_id: int | None = None,
    signal: str | None = None,
    limit: int = 1000,
) -> list[StoredFact]:
    """Facts of the tenant, newest first, optionally of one asset and one signal (or prefix)."""
    if not files:
        return []
    params = [
        [str(f) for f in files],
        tenant_id,
        asset_id,
        asset_id,
        signal,
        signal,
        signal,
        limit,
    ]
    with connect_duckdb() as connection:
        table = read_facts(connection, _LIST_SQL, params)
    return [_stored(row) for row in table.to_pylist()]


def _stored(row: dict[str, object]) -> StoredFact:
    ledger_index = row["ledger_index"]
    return StoredFact(
        asset_id=int(str(row["asset_id"])),
        signal=str(row["signal"]),
        value=_value(row),
        observed_at=row["observed_at"],  # type: ignore[arg-type]
        evidence_id=int(str(row["evidence_id"])),
        ledger_index=None if ledger_index is None else int(str(ledger_index)),
    )
