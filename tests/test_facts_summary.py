"""The per-tenant summary of first and last observations: incremental, and safe to lose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from claimready.facts.store import FactRow, write_facts
from claimready.facts.summary import SUMMARY_NAME, summarize

START = datetime(2026, 5, 1, tzinfo=UTC)


def _write(facts_dir: Path, evidence: int, rows: list[FactRow]) -> list[Path]:
    written = write_facts(
        facts_dir=facts_dir, tenant_id=1, evidence_id=evidence, ledger_index=None, rows=rows
    )
    return [facts_dir / w.path for w in written]


def _as_dict(table: object) -> dict[tuple[int, str, str | None], tuple[int, int]]:
    rows = table.to_pylist()  # type: ignore[attr-defined]
    return {(r["asset_id"], r["signal"], r["key"]): (r["first"], r["last"]) for r in rows}


def test_summary_is_kept_extended_and_rebuilt(tmp_path: Path) -> None:
    facts_dir = tmp_path / "facts"
    cache = facts_dir / "tenant=1"
    day = timedelta(days=1)
    files = _write(
        facts_dir,
        1,
        [
            FactRow(7, "edr.healthy", True, START),
            FactRow(7, "edr.healthy", False, START + 2 * day),
            FactRow(1, "kev.listed", "CVE-1", START + day),
        ],
    )
    connection = duckdb.connect()
    first = summarize(connection, files=files, tenant_id=1, cache=cache)
    us = int(START.timestamp() * 1_000_000)
    day_us = 86_400_000_000
    assert _as_dict(first) == {
        (7, "edr.healthy", None): (us, us + 2 * day_us),
        (1, "kev.listed", "CVE-1"): (us + day_us, us + day_us),
    }
    assert (cache / SUMMARY_NAME).exists()

    # A new file is added to what is kept; the old files are not read again.
    files += _write(facts_dir, 2, [FactRow(7, "edr.healthy", True, START - day)])
    for old in files[:-1]:
        old.rename(old.with_suffix(".moved"))
    second = _as_dict(
        summarize(connection, files=files[-1:] + files[:-1], tenant_id=1, cache=cache)
    )
    assert second[(7, "edr.healthy", None)] == (us - day_us, us + 2 * day_us)
    for old in files[:-1]:
        old.with_suffix(".moved").rename(old)

    # A damaged summary is rebuilt from the files; restricted summaries are never kept.
    (cache / SUMMARY_NAME).write_bytes(b"not arrow")
    assert _as_dict(summarize(connection, files=files, tenant_id=1, cache=cache)) == second
    only_first = summarize(
        connection,
        files=files,
        tenant_id=1,
        cache=cache,
        allowed=lambda ids: np.asarray(ids) == 1,
    )
    assert _as_dict(only_first) == _as_dict(first)
