"""Ingest on both databases: all or nothing, content-addressed, tenant-scoped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claimready.app import App
from claimready.assets.models import Asset
from claimready.assets.service import IdentityIndex
from claimready.blobs.local import LocalBlobStore
from claimready.db.engine import transaction
from claimready.demo.generate import FleetFaults, defender_machines
from claimready.errors import InputError, NotFoundError
from claimready.evidence import service
from claimready.evidence.models import OBSERVED_FROM_COLLECTION, Evidence
from claimready.evidence.service import IngestItem, IngestResult, ingest_file, ingest_files
from claimready.facts import store as fact_store
from claimready.facts.query import list_facts
from claimready.facts.store import (
    COMPACT_MIN_FILES,
    FACT_SCHEMA,
    FactRow,
    fact_files,
    fact_paths,
    write_facts,
)
from claimready.ledger.records import decode_record
from claimready.tenants.models import Tenant


def _counts(app: App) -> tuple[int, int]:
    with transaction(app.sessions) as session:
        evidence = session.scalar(select(func.count()).select_from(Evidence)) or 0
        assets = session.scalar(select(func.count()).select_from(Asset)) or 0
    return evidence, assets


def _fact_files(app: App) -> list[Path]:
    root = app.settings.facts_dir
    return sorted(root.rglob("*.parquet")) if root.exists() else []


def test_sample_is_stored_with_metadata_and_facts(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    make_tenant("acme")
    result = ingest_file(app=app, tenant_slug="acme", path=defender_sample, source_kind="defender")
    digest = hashlib.sha256(defender_sample.read_bytes()).hexdigest()
    assert result.sha256 == digest
    assert app.blobs.get_bytes(digest) == defender_sample.read_bytes()
    assert result.observed_origin == OBSERVED_FROM_COLLECTION
    assert result.record_count == result.asset_count == 2
    assert len(result.warnings) == 2
    with transaction(app.sessions) as session:
        evidence = session.scalars(select(Evidence)).one()
        assert evidence.size == defender_sample.stat().st_size
        assert evidence.connector == "defender"
        assert evidence.collected_at <= evidence.stored_at
        files = fact_paths(
            session=session, tenant_id=evidence.tenant_id, facts_dir=app.settings.facts_dir
        )
    rows = pq.read_table(files).to_pylist()
    assert len(rows) == result.fact_count == 6  # 3 facts per machine, no readable lastSeen
    assert {r["evidence_id"] for r in rows} == {result.evidence_id}


def test_same_file_twice_is_stored_once(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    make_tenant("acme")
    first = ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    second = ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    assert second.duplicate and second.evidence_id == first.evidence_id
    assert _counts(app) == (1, 2)
    assert len(_fact_files(app)) == 1


def test_bad_file_stores_nothing_and_keeps_earlier_data(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path, tmp_path: Path
) -> None:
    make_tenant("acme")
    ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    before = (_counts(app), _fact_files(app), sorted(app.blobs.iter_hashes()))
    bad = tmp_path / "machines.json"
    bad.write_text(json.dumps({"value": [{"id": "x", "healthStatus": "Active"}]}))
    with pytest.raises(InputError, match="onboardingStatus"):
        ingest_file(app=app, tenant_slug="acme", path=bad, source_kind="defender")
    assert (_counts(app), _fact_files(app), sorted(app.blobs.iter_hashes())) == before


def test_unknown_tenant_and_missing_file(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path, tmp_path: Path
) -> None:
    make_tenant("acme")
    with pytest.raises(NotFoundError, match="unknown tenant 'nope'"):
        ingest_file(app=app, tenant_slug="nope", path=defender_sample)
    with pytest.raises(InputError, match="no such file"):
        ingest_file(app=app, tenant_slug="acme", path=tmp_path / "missing.zip")
    assert _counts(app) == (0, 0)


def test_tenants_do_not_share_evidence(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    make_tenant("acme")
    make_tenant("globex")
    a = ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    b = ingest_file(app=app, tenant_slug="globex", path=defender_sample)
    assert not b.duplicate and a.evidence_id != b.evidence_id
    assert _counts(app) == (2, 4)


def test_many_small_ingests_of_a_day_are_compacted(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[int] = []
    refresh = fact_store.refresh_snapshots

    def recording(**kwargs: Any) -> int:
        refreshed.append(kwargs["tenant_id"])
        return refresh(**kwargs)

    # After compaction, each ingest also brings older snapshot files up to the KEV
    # catalog (tests/test_facts_snapshots.py checks what that does).
    monkeypatch.setattr(fact_store, "refresh_snapshots", recording)
    tenant = make_tenant("acme")
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    total = 0
    for n in range(COMPACT_MIN_FILES + 1):
        document = defender_machines(
            count=5,
            now=now + timedelta(minutes=n),
            seed=n,
            faults=FleetFaults(),
            domain="a.example",
        )
        path = tmp_path / f"export-{n}.json"
        path.write_text(json.dumps(document))
        total += ingest_file(app=app, tenant_slug="acme", path=path).fact_count
    with transaction(app.sessions) as session:
        files = fact_paths(session=session, tenant_id=tenant.id, facts_dir=app.settings.facts_dir)
    assert len(files) < COMPACT_MIN_FILES
    assert sum(pq.read_metadata(f).num_rows for f in files) == total
    assert len(_fact_files(app)) == len(files)  # replaced files are gone from disk
    assert refreshed == [tenant.id] * (COMPACT_MIN_FILES + 1)


def _exports(directory: Path, count: int) -> list[Path]:
    """``count`` distinct Defender exports of five machines each."""
    paths = []
    for n in range(count):
        document = defender_machines(
            count=5,
            now=datetime(2026, 3, 2, 12, tzinfo=UTC) + timedelta(hours=n),
            seed=n,
            faults=FleetFaults(),
            domain="a.example",
        )
        paths.append(directory / f"export-{n}.json")
        paths[-1].write_text(json.dumps(document))
    return paths


def _packs(app: App) -> list[Path]:
    store = app.blobs
    assert isinstance(store, LocalBlobStore)
    folder = store.root / "packs"
    return sorted(p for p in folder.iterdir() if p.suffix == ".pack") if folder.exists() else []


def test_ingest_files_stores_blobs_in_one_pack_and_enters_each_file_in_the_ledger(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant("acme")
    make_tenant("globex")
    paths = _exports(tmp_path, 4)
    seen: list[int] = []
    items = [IngestItem(path, source_kind="defender") for path in [*paths, paths[1]]]
    results = ingest_files(
        app=app, tenant_slug="acme", items=items, on_result=lambda r: seen.append(r.evidence_id)
    )
    assert len(_packs(app)) == 1
    assert [r.sha256 for r in results] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in [*paths, paths[1]]
    ]
    assert seen == [r.evidence_id for r in results]
    assert results[4].duplicate and results[4].evidence_id == results[1].evidence_id
    one_by_one = [ingest_file(app=app, tenant_slug="globex", path=p) for p in paths]
    assert [(r.record_count, r.fact_count, r.asset_count) for r in results[:4]] == [
        (r.record_count, r.fact_count, r.asset_count) for r in one_by_one
    ]
    with app.open_ledger("acme") as ledger:
        for result in results[:4]:
            assert result.ledger_index is not None
            assert result.ledger_index < ledger.size  # covered by a signed checkpoint
            record = decode_record(ledger.entry(result.ledger_index))
            assert record["blob"]["sha256"] == result.sha256


def test_ingest_files_enters_a_group_with_one_append_and_one_checkpoint(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant("acme")
    paths = _exports(tmp_path, 5)
    earlier = ingest_file(app=app, tenant_slug="acme", path=paths[0])
    checkpoints = app.settings.ledger_dir / "acme" / "checkpoints"
    before = {p.name for p in checkpoints.iterdir()}
    items = [IngestItem(p, source_kind="defender") for p in [*paths, paths[2]]]
    results = ingest_files(app=app, tenant_slug="acme", items=items)
    assert [r.duplicate for r in results] == [True, False, False, False, False, True]
    assert results[0].ledger_index == earlier.ledger_index
    assert results[5].ledger_index == results[2].ledger_index
    new = sorted(r.ledger_index for r in results[1:5] if r.ledger_index is not None)
    assert new == [1, 2, 3, 4]  # one entry per new file, none for the repeats
    assert {p.name for p in checkpoints.iterdir()} - before == {"5"}  # one checkpoint
    with transaction(app.sessions) as session:
        stored = {e.ledger_index: e.stored_at for e in session.scalars(select(Evidence))}
    assert len({stored[i] for i in new}) == 1
    with app.open_ledger("acme") as ledger:
        assert ledger.size == 5
        for result, path in zip(results[1:5], paths[1:], strict=True):
            assert result.ledger_index is not None
            record = decode_record(ledger.entry(result.ledger_index))
            assert record["blob"] == {"sha256": result.sha256, "size": path.stat().st_size}
            assert record["source"] == {"kind": "defender", "name": "defender"}


def test_ingest_files_reads_the_identity_index_once_per_group(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tenant("acme")
    make_tenant("globex")
    paths = _exports(tmp_path, 4)
    later = defender_machines(  # the machines of the first export, a day later
        count=5,
        now=datetime(2026, 3, 3, 12, tzinfo=UTC),
        seed=0,
        faults=FleetFaults(),
        domain="a.example",
    )
    paths.append(tmp_path / "export-later.json")
    paths[-1].write_text(json.dumps(later))
    loads: list[int] = []
    real_load = IdentityIndex.load

    def load(*, session: Session, tenant_id: int) -> IdentityIndex:
        loads.append(tenant_id)
        return real_load(session=session, tenant_id=tenant_id)

    monkeypatch.setattr(IdentityIndex, "load", load)
    grouped = ingest_files(
        app=app, tenant_slug="acme", items=[IngestItem(p, source_kind="defender") for p in paths]
    )
    assert len(loads) == 1
    one_by_one = [ingest_file(app=app, tenant_slug="globex", path=p) for p in paths]
    assert len(loads) == 1 + len(paths)
    assert [r.asset_count for r in grouped] == [r.asset_count for r in one_by_one]
    assert _assets_by_tenant(app) == {"acme": 20, "globex": 20}  # the last file adds none


def _assets_by_tenant(app: App) -> dict[str, int]:
    with transaction(app.sessions) as session:
        rows = session.execute(
            select(Tenant.slug, func.count(Asset.id))
            .join(Asset, Asset.tenant_id == Tenant.id)
            .group_by(Tenant.slug)
        ).all()
    return {row[0]: row[1] for row in rows}


def test_ingest_files_stops_at_a_bad_file_keeping_the_files_before_it(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant("acme")
    first, second, after = _exports(tmp_path, 3)
    bad = tmp_path / "machines.json"
    bad.write_text(json.dumps({"value": [{"id": "x", "healthStatus": "Active"}]}))
    items = [IngestItem(p, source_kind="defender") for p in (first, second, bad, after)]
    with pytest.raises(InputError, match="onboardingStatus") as caught:
        ingest_files(app=app, tenant_slug="acme", items=items)
    assert caught.value.file == str(bad)
    with transaction(app.sessions) as session:
        names = session.scalars(select(Evidence.original_name).order_by(Evidence.id)).all()
    assert names == [first.name, second.name]
    stored = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)}
    assert set(app.blobs.iter_hashes()) == stored


def test_fact_files_hold_each_value_in_its_column_one_file_per_day(tmp_path: Path) -> None:
    class Level(IntEnum):
        HIGH = 3

    day = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    rows = [
        FactRow(1, "edr.healthy", True, day),
        FactRow(1, "vuln.high_open", 2, day + timedelta(hours=1)),
        FactRow(2, "vuln.max_cvss", 9.8, day),
        FactRow(2, "vuln.high_open", Level.HIGH, day),
        FactRow(2, "vuln.cve", "CVE-2024-1", day + timedelta(hours=2)),
        FactRow(3, "scan.last_scanned", day, day),
    ]
    files = write_facts(facts_dir=tmp_path, tenant_id=5, evidence_id=9, ledger_index=4, rows=rows)
    assert [(f.day.isoformat(), f.rows) for f in files] == [("2025-03-01", 4), ("2025-03-02", 2)]
    read = pq.read_table([tmp_path / f.path for f in files]).to_pylist()
    values = {
        (r["asset_id"], r["signal"], r["observed_at"]): (
            r["value_bool"],
            r["value_num"],
            r["value_text"],
            r["value_time"],
        )
        for r in read
    }
    assert values[1, "edr.healthy", day] == (True, None, None, None)
    assert values[1, "vuln.high_open", day + timedelta(hours=1)] == (None, 2.0, None, None)
    assert values[2, "vuln.high_open", day] == (None, 3.0, None, None)
    assert values[2, "vuln.cve", day + timedelta(hours=2)] == (None, None, "CVE-2024-1", None)
    assert values[3, "scan.last_scanned", day] == (None, None, None, day)
    assert {(r["tenant_id"], r["evidence_id"], r["ledger_index"]) for r in read} == {(5, 9, 4)}


def test_a_past_month_of_day_files_becomes_one_file(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant("acme")
    total = 0
    for n in range(COMPACT_MIN_FILES):
        moment = datetime(2026, 1, 3 + n, 9, tzinfo=UTC)
        document = defender_machines(
            count=4, now=moment, seed=n, faults=FleetFaults(), domain="a.example"
        )
        path = tmp_path / f"export-{n}.json"
        path.write_text(json.dumps(document))
        total += ingest_file(app=app, tenant_slug="acme", path=path, observed_at=moment).fact_count
    with transaction(app.sessions) as session:
        files = fact_files(session=session, tenant_id=tenant.id, facts_dir=app.settings.facts_dir)
        listed = list_facts(files=[f.path for f in files], tenant_id=tenant.id, limit=total + 1)
    assert [(f.day, f.last_day) for f in files] == [(date(2026, 1, 1), date(2026, 1, 31))]
    assert files[0].path.parent.name == "month=2026-01"
    assert len(listed) == total
    assert len(_fact_files(app)) == 1  # the day files are gone from disk
    table = pq.ParquetFile(files[0].path).read()
    assert table.schema == FACT_SCHEMA
    keys = list(zip(*(table.column(c).to_pylist() for c in ("signal", "asset_id")), strict=True))
    assert keys == sorted(keys)  # sorted by signal, so scans skip other signals' row groups


def test_ingest_files_stops_at_a_file_whose_transaction_fails(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tenant("acme")
    paths = _exports(tmp_path, 3)
    record = service._record

    def failing_record(**kwargs: Any) -> IngestResult:
        if kwargs["request"].path == paths[1]:
            raise InputError("injected", file=paths[1])
        return record(**kwargs)

    monkeypatch.setattr(service, "_record", failing_record)
    seen: list[IngestResult] = []
    with pytest.raises(InputError, match="injected"):
        ingest_files(
            app=app,
            tenant_slug="acme",
            items=[IngestItem(p, source_kind="defender") for p in paths],
            on_result=seen.append,
        )
    assert [r.sha256 for r in seen] == [hashlib.sha256(paths[0].read_bytes()).hexdigest()]
    assert _counts(app)[0] == 1
