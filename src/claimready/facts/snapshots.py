"""Per-file snapshot counts and KEV matches, written when facts are compacted.

``count()`` and ``kev()`` read snapshots: the facts of a signal's domain
observed at one moment for an asset. A vulnerability scan reports twenty CVEs
per host, so counting snapshots means grouping most of a tenant's facts, and
``kev()`` looks every CVE up in the KEV catalog: at every evaluation, the
largest part of its cost.

Compaction therefore writes, beside each merged file ``c-<id>.parquet``, a
file ``c-<id>.snapshots`` (Parquet) derived from it alone and the KEV catalog
of that moment:

- for every domain in which some signal has several facts at one moment from
  one piece of evidence (a *multi-valued* domain; the KEV catalog's own domain
  never counts), one row per signal, asset, moment and evidence with the
  number of facts ``n`` and no ``value``;
- for the text facts of those domains whose value the KEV catalog listed, one
  row per signal, asset, moment, evidence and value, with ``n`` the number of
  such facts.

Rows are sorted by domain, then asset, moment and evidence, so that a reader
finds a domain's rows together (skipping other row groups by their statistics)
and each snapshot's rows next to each other. Its metadata names the domains
covered and the CVEs that were looked up. An
evaluation uses it for a domain it covers, and for ``kev()`` only when every
CVE the catalog lists now was looked up; otherwise (a domain not covered, a
catalog that has grown since, a file compacted before snapshot files existed
or whose snapshot file is gone) it reads the facts themselves, with the same
result. Fact files are never changed once written, so a snapshot file is
never stale: it goes when its fact file goes. When the catalog grows, ingest
writes the files that looked up less again
(:func:`claimready.facts.store.refresh_snapshots`).
"""

# SQL here names only generated file paths (quoted) and fixed signal names.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from claimready.facts.store import COMPACT_ROW_GROUP_ROWS, SNAPSHOTS_SUFFIX, parquet_sql, sql_text

SUFFIX = SNAPSHOTS_SUFFIX
KEV_SIGNAL = "kev.listed"
_DOMAINS = b"claimready.domains"
_LOOKED_UP = b"claimready.kev"


@dataclass(frozen=True, slots=True)
class Covered:
    """What a snapshot file holds: the domains it covers and the CVEs looked up."""

    domains: frozenset[str]
    looked_up: frozenset[str]


def snapshot_path(fact_file: Path) -> Path:
    """The snapshot file beside a fact file."""
    return fact_file.with_suffix(SUFFIX)


def domain(signal: str) -> str:
    """A signal's domain: its name up to the first dot."""
    return signal.split(".", 1)[0]


def write_snapshots(
    connection: duckdb.DuckDBPyConnection, *, fact_file: Path, kev: Iterable[str]
) -> Path | None:
    """Write the snapshot file of a fact file (fsynced); None when no domain is multi-valued.

    ``kev`` is every CVE the tenant's KEV catalog lists now. The file is written
    under a temporary name and renamed, so a reader finds it whole or not at all.
    """
    source = parquet_sql([fact_file])
    multi = connection.execute(
        f"SELECT DISTINCT split_part(signal, '.', 1) AS d FROM (SELECT signal FROM {source} "
        f"GROUP BY tenant_id, signal, asset_id, observed_at, evidence_id HAVING count(*) > 1) "
        f"WHERE d <> {sql_text(domain(KEV_SIGNAL))} ORDER BY d"
    ).fetchall()
    domains = [str(row[0]) for row in multi]
    if not domains:
        return None
    looked_up = sorted(set(kev))
    connection.register("snapshot_kev", pa.table({"key": pa.array(looked_up, pa.string())}))
    try:
        wanted = f"split_part(signal, '.', 1) IN ({', '.join(sql_text(d) for d in domains)})"
        keys = "tenant_id, signal, asset_id, observed_at, evidence_id"
        table = connection.execute(
            f"SELECT {keys}, n, value FROM ("
            f"SELECT {keys}, count(*) AS n, NULL::VARCHAR AS value FROM {source} "
            f"WHERE {wanted} GROUP BY ALL UNION ALL "
            f"SELECT {keys}, count(*) AS n, value_text AS value FROM {source} "
            f"WHERE {wanted} AND value_text IN (SELECT key FROM snapshot_kev) GROUP BY ALL) "
            f"ORDER BY split_part(signal, '.', 1), asset_id, observed_at, evidence_id, signal, "
            f"value NULLS FIRST"
        ).to_arrow_table()
    finally:
        connection.unregister("snapshot_kev")
    metadata = {
        _DOMAINS: json.dumps(domains).encode(),
        _LOOKED_UP: json.dumps(looked_up).encode(),
    }
    final = snapshot_path(fact_file)
    temporary = final.with_name(f".{final.name}.tmp")
    try:
        pq.write_table(
            table.replace_schema_metadata(metadata),
            temporary,
            compression="zstd",
            row_group_size=COMPACT_ROW_GROUP_ROWS,
        )
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final


def covered(fact_file: Path) -> Covered | None:
    """What the snapshot file of a fact file covers; None when it has none (or it is unreadable)."""
    try:
        metadata = pq.read_schema(snapshot_path(fact_file)).metadata or {}
        domains = json.loads(metadata[_DOMAINS])
        looked_up = json.loads(metadata[_LOOKED_UP])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return Covered(frozenset(domains), frozenset(looked_up))
