"""Snapshot files: written by compaction beside the merged file, and gone with it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from claimready.app import App
from claimready.db.engine import transaction
from claimready.facts import snapshots
from claimready.facts.store import (
    COMPACT_MIN_FILES,
    FactRow,
    compact,
    compact_month,
    fact_paths,
    refresh_snapshots,
    register,
    write_facts,
)
from claimready.tenants.models import Tenant

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _ingest(app: App, tenant_id: int, evidence: int, rows: list[FactRow]) -> None:
    written = write_facts(
        facts_dir=app.settings.facts_dir,
        tenant_id=tenant_id,
        evidence_id=evidence,
        ledger_index=None,
        rows=rows,
    )
    with transaction(app.sessions) as session:
        register(session=session, tenant_id=tenant_id, files=written)


def _files(app: App, tenant_id: int) -> list[Path]:
    with transaction(app.sessions) as session:
        return fact_paths(session=session, tenant_id=tenant_id, facts_dir=app.settings.facts_dir)


def _catalog_and_a_day_of_scans(
    app: App,
    tenant: int,
    cves: Callable[[int], list[str]],
    more: Callable[[datetime], list[FactRow]],
) -> None:
    """CVE-1 in the KEV catalog, then enough scans of asset 7 in one day to compact:
    scan ``n`` reports ``cves(n)`` and the facts ``more`` gives for its moment."""
    _ingest(app, tenant, 1, [FactRow(1, "kev.listed", "CVE-1", DAY - timedelta(days=3))])
    for n in range(COMPACT_MIN_FILES):
        moment = DAY + timedelta(hours=n)
        rows = [FactRow(7, "vuln.cve", cve, moment) for cve in cves(n)]
        _ingest(app, tenant, 2 + n, rows + more(moment))


def test_compaction_keeps_snapshot_counts_and_kev_matches(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant("acme").id
    _catalog_and_a_day_of_scans(
        app,
        tenant,
        lambda n: ["CVE-1", "CVE-2", "CVE-2"] if n % 2 else ["CVE-3"],
        lambda moment: [
            FactRow(7, "vuln.critical_open", 1.0, moment),
            FactRow(7, "edr.healthy", True, moment),
        ],
    )
    assert compact(
        sessions=app.sessions, tenant_id=tenant, facts_dir=app.settings.facts_dir, day=DAY.date()
    )
    merged = [f for f in _files(app, tenant) if f.name.startswith("c-")]
    assert len(merged) == 1
    covered = snapshots.covered(merged[0])
    assert covered == snapshots.Covered(frozenset({"vuln"}), frozenset({"CVE-1"}))
    table = pq.read_table(snapshots.snapshot_path(merged[0])).to_pylist()
    kept = [(r["signal"], r["observed_at"].hour, r["n"], r["value"]) for r in table]
    # By domain, asset, moment and evidence: each snapshot's rows together.
    assert kept[:5] == [
        ("vuln.critical_open", 0, 1, None),
        ("vuln.cve", 0, 1, None),
        ("vuln.critical_open", 1, 1, None),
        ("vuln.cve", 1, 3, None),
        ("vuln.cve", 1, 1, "CVE-1"),
    ]
    assert not any(r["signal"].startswith("edr.") for r in table)  # one fact per moment

    # Merging the month replaces the day file: its snapshot file goes with it.
    for n in range(COMPACT_MIN_FILES):
        _ingest(app, tenant, 20 + n, [FactRow(7, "edr.healthy", True, DAY + timedelta(days=n + 1))])
    assert compact_month(
        sessions=app.sessions,
        tenant_id=tenant,
        facts_dir=app.settings.facts_dir,
        month=date(2026, 3, 1),
    )
    assert not snapshots.snapshot_path(merged[0]).exists()
    (month,) = [f for f in _files(app, tenant) if f.parent.name == "month=2026-03"]
    assert snapshots.covered(month) == covered
    folder = app.settings.facts_dir / f"tenant={tenant}"
    assert len(list(folder.rglob("*" + snapshots.SUFFIX))) == 1


def test_a_grown_kev_catalog_refreshes_older_snapshot_files(
    app: App, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    covered_by = snapshots.covered

    def recording(fact_file: Path) -> snapshots.Covered | None:
        opened.append(fact_file)
        return covered_by(fact_file)

    monkeypatch.setattr(snapshots, "covered", recording)
    tenant = make_tenant("acme").id
    _catalog_and_a_day_of_scans(app, tenant, lambda _: ["CVE-1", "CVE-2"], lambda _: [])
    facts_dir = app.settings.facts_dir
    assert compact(sessions=app.sessions, tenant_id=tenant, facts_dir=facts_dir, day=DAY.date())
    (merged,) = [f for f in _files(app, tenant) if f.name.startswith("c-")]
    assert refresh_snapshots(sessions=app.sessions, tenant_id=tenant, facts_dir=facts_dir) == 0
    assert opened  # looked once ...
    opened.clear()
    assert refresh_snapshots(sessions=app.sessions, tenant_id=tenant, facts_dir=facts_dir) == 0
    assert opened == []  # ... and not again while the catalog stays the same

    # The catalog now lists CVE-2 as well: the merged file's snapshot file no longer
    # stands for its facts in kev(), until it is written again.
    _ingest(app, tenant, 30, [FactRow(1, "kev.listed", "CVE-2", DAY + timedelta(days=5))])
    assert refresh_snapshots(sessions=app.sessions, tenant_id=tenant, facts_dir=facts_dir) == 1
    covered = snapshots.covered(merged)
    assert covered == snapshots.Covered(frozenset({"vuln"}), frozenset({"CVE-1", "CVE-2"}))
    matched = {
        r["value"] for r in pq.read_table(snapshots.snapshot_path(merged)).to_pylist() if r["value"]
    }
    assert matched == {"CVE-1", "CVE-2"}
    opened.clear()
    assert refresh_snapshots(sessions=app.sessions, tenant_id=tenant, facts_dir=facts_dir) == 0
    assert opened == []
