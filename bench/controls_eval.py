"""Benchmark of control evaluation over time on a large tenant.

A tenant with 10,000 assets (users, workstations, servers, backup jobs,
network devices, cloud resources, email domains, the organization) and a
year of daily evidence for 20 baseline controls is written directly as
Parquet in the product's layout (``tenant=<id>/day=<date>/``, one compacted
file per day with its snapshot file) and registered in a fresh SQLite deployment (tenant, sources,
evidence, assets, fact files); settled months are then merged into one file
each by the product's own compaction, as ingest does. The product's
:func:`claimready.controls.service.evaluate` runs on it.

Measured, each in a child process whose peak resident memory (VmHWM) is read:

1. *full*: the 20 controls at every daily step of 365 days (not stored);
2. *as-of*: every one of the 20 controls at one moment;
3. *floor*: a raw DuckDB scan of the same Parquet (count and newest
   observation per signal), the least any evaluation reading it can cost;
4. *python*: a straightforward per-asset evaluation in plain Python (the
   facts of each asset sorted per signal, the latest fresh value found by
   bisection, the predicate's reference evaluator per asset and step) on a
   sample of assets, extrapolated linearly to every asset.

Usage::

    python -m bench controls            # 10,000 assets, 365 days (about 70M facts)
    python -m bench controls --quick    # 500 assets, 30 days
"""

# SQL here is built from this module's constants and generated paths only.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import insert

from claimready.app import App
from claimready.assets.models import Asset
from claimready.controls.expr import COUNT, EVER, KEV, STEP_COLUMN, VALUE, column, evaluate_row
from claimready.controls.pack import Control, baseline
from claimready.controls.service import EvaluateRequest, evaluate
from claimready.db.engine import transaction
from claimready.db.migrate import upgrade
from claimready.evidence.models import Evidence
from claimready.facts.models import FactFile
from claimready.facts.snapshots import write_snapshots
from claimready.facts.store import (
    COMPACT_ORDER,
    COMPACT_ROW_GROUP_ROWS,
    MONTHS_SETTLE,
    compact_month,
    connect_duckdb,
    months_to_merge,
    parquet_sql,
)
from claimready.settings import Settings
from claimready.sources.models import Source
from claimready.tenants import service as tenants

TARGET_FULL_S = 5.0
TARGET_ASOF_S = 0.3
TARGET_PEAK = 4 << 30
START = datetime(2025, 1, 1, tzinfo=UTC)
SLUG = "bench"
CONTROLS = (
    "mfa-remote-access",
    "mfa-email-saas",
    "mfa-privileged",
    "privileged-count",
    "dormant-accounts",
    "edr-coverage",
    "monitoring-24x7",
    "backups-recent",
    "backups-isolated",
    "restore-tested",
    "kev-remediated",
    "critical-patched",
    "scan-cadence",
    "pen-test-annual",
    "end-of-life-software",
    "external-exposure",
    "disk-encryption",
    "logging-coverage",
    "log-retention",
    "email-authentication",
)
# Share of each asset kind in the fleet (the organization is one asset).
KINDS = (
    ("user", 0.40),
    ("workstation", 0.45),
    ("server", 0.08),
    ("backup_job", 0.02),
    ("network_device", 0.03),
    ("cloud_resource", 0.0194),
    ("email_domain", 0.0005),
)
HOSTS = "'workstation', 'server'"
# (source, kinds as SQL, signal, value expression over h and o, facts per asset, share reported)
# h is a pseudo-random 0..999_999 per fact, o the observation time.
SIGNALS: tuple[tuple[str, str, str, str, int, float], ...] = (
    ("identity", "'user'", "identity.mfa_registered", "h % 1000 >= 2", 1, 1.0),
    ("identity", "'user'", "identity.is_admin", "h % 1000 < 1", 1, 1.0),
    ("identity", "'user'", "identity.is_root", "FALSE", 1, 1.0),
    ("identity", "'user'", "identity.enabled", "h % 100 >= 3", 1, 1.0),
    ("identity", "'user'", "identity.last_sign_in", "o - to_hours(h % 400)", 1, 1.0),
    ("signin", "'user'", "signin.count", "(h % 40)::DOUBLE", 1, 1.0),
    ("signin", "'user'", "signin.single_factor", "o - to_days(h % 90)", 1, 0.05),
    ("signin", "'user'", "signin.legacy_auth", "o - to_days(h % 90)", 1, 0.02),
    ("edr", HOSTS, "edr.onboarded", "h % 1000 >= 3", 1, 1.0),
    ("edr", HOSTS, "edr.healthy", "h % 1000 >= 5", 1, 1.0),
    ("edr", HOSTS, "edr.last_seen", "o - to_minutes(h % 300)", 1, 0.998),
    ("vuln", HOSTS, "vuln.critical_open", "(h % 100 < 2)::INT::DOUBLE", 1, 1.0),
    ("vuln", HOSTS, "vuln.cve", "'CVE-2024-' || (10000 + h % 90000)", 21, 1.0),
    ("scan", HOSTS, "scan.last_scanned", "o - to_days(h % 6)", 1, 1.0),
    (
        "rmm",
        HOSTS,
        "device.os",
        "CASE WHEN h % 1000 < 2 THEN 'Windows 7' ELSE 'Windows 11' END",
        1,
        1.0,
    ),
    ("rmm", HOSTS, "device.encrypted", "h % 1000 >= 8", 1, 1.0),
    (
        "exposure",
        HOSTS + ", 'network_device', 'cloud_resource'",
        "exposure.rdp",
        "h % 1000 < 2",
        1,
        1.0,
    ),
    (
        "exposure",
        HOSTS + ", 'network_device', 'cloud_resource'",
        "exposure.smb",
        "h % 1000 < 1",
        1,
        1.0,
    ),
    (
        "exposure",
        HOSTS + ", 'network_device', 'cloud_resource'",
        "exposure.internet",
        "h % 1000 < 50",
        1,
        1.0,
    ),
    ("siem", "'server'", "log.last_event", "o - to_minutes(h % 120)", 1, 0.999),
    ("backup", "'backup_job'", "backup.last_success", "o - to_hours(h % 30)", 1, 1.0),
    ("backup", "'backup_job'", "backup.restore_tested", "o - to_days(h % 80)", 1, 1.0),
    ("org", "'organization'", "monitoring.always_on", "TRUE", 1, 1.0),
    ("org", "'organization'", "monitoring.contract_start", "TIMESTAMPTZ '2024-06-01'", 1, 1.0),
    ("org", "'organization'", "monitoring.contract_end", "TIMESTAMPTZ '2027-06-01'", 1, 1.0),
    ("org", "'organization'", "monitoring.response_minutes", "30.0", 1, 1.0),
    ("org", "'organization'", "backup.immutable", "TRUE", 1, 1.0),
    ("org", "'organization'", "backup.isolated", "FALSE", 1, 1.0),
    ("org", "'organization'", "pentest.performed", "TIMESTAMPTZ '2024-11-15'", 1, 1.0),
    ("org", "'organization'", "log.retention_days", "365.0", 1, 1.0),
    ("kev", "'organization'", "kev.listed", "'CVE-2024-' || (10000 + i * 75)", 1200, 1.0),
    ("dns", "'email_domain'", "email.spf", "TRUE", 1, 1.0),
    ("dns", "'email_domain'", "email.dkim", "h % 100 >= 1", 1, 1.0),
    ("dns", "'email_domain'", "email.dmarc_policy", "'reject'", 1, 1.0),
)
_COLUMN_OF = {
    "bool": "value_bool",
    "number": "value_num",
    "text": "value_text",
    "time": "value_time",
}


@dataclass(frozen=True, slots=True)
class Size:
    """How big a tenant to generate."""

    assets: int
    days: int


FULL = Size(assets=10_000, days=365)
QUICK = Size(assets=500, days=30)


# --- dataset -------------------------------------------------------------------------


def _fleet(size: Size) -> list[tuple[int, str]]:
    """Asset ids and kinds: the organization first, then every kind by its share."""
    fleet = [(1, "organization")]
    for kind, share in KINDS:
        count = max(1, round((size.assets - 1) * share))
        fleet.extend((len(fleet) + 1, kind) for _ in range(count))
    return fleet[: size.assets]


def _sources() -> list[str]:
    """Every evidence source, in a fixed order."""
    return list(dict.fromkeys(s[0] for s in SIGNALS))


def _signal_sql(types: dict[str, str]) -> str:
    """One SELECT per signal producing fact rows for one day (``d``) and asset table ``a``."""
    sources = _sources()
    parts = []
    for source, kinds, signal, value, per_asset, share in SIGNALS:
        target = _COLUMN_OF[types[signal]]
        columns = ", ".join(
            f"({value}) AS {name}" if name == target else f"NULL AS {name}"
            for name in _COLUMN_OF.values()
        )
        parts.append(
            f"SELECT a.asset_id, '{signal}' AS signal, {columns}, o AS observed_at, "
            f"(d_index * {len(sources)} + {sources.index(source) + 1})::BIGINT AS evidence_id "
            f"FROM (SELECT a.asset_id, i, d_index, "
            f"(hash(a.asset_id, '{signal}', d_index, i) % 1000000)::BIGINT AS h, "
            f"d + to_minutes((360 + hash(a.asset_id, '{source}', d_index) % 600)::BIGINT) AS o "
            f"FROM a, d_row, range({per_asset}) r(i) WHERE a.kind IN ({kinds})) a "
            f"WHERE h % 1000 < {int(share * 1000)}"
        )
    return " UNION ALL ".join(parts)


def _write_parquet(facts_dir: Path, tenant_id: int, size: Size, types: dict[str, str]) -> int:
    """Write one Parquet file per day in the tenant's layout; return the number of facts."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    fleet = _fleet(size)
    connection.execute("CREATE TABLE a (asset_id BIGINT, kind VARCHAR)")
    connection.executemany("INSERT INTO a VALUES (?, ?)", fleet)
    select = _signal_sql(types)
    # Sorted and grouped exactly as the product's compaction writes a day's file.
    order = ", ".join(name for name, _ in COMPACT_ORDER)
    total = 0
    for index in range(size.days):
        day = START + timedelta(days=index)
        folder = facts_dir / f"tenant={tenant_id}" / f"day={day.date().isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE d_row AS SELECT {index} AS d_index, "
            f"TIMESTAMPTZ '{day.isoformat()}' AS d"
        )
        rows = connection.execute(
            f"COPY (SELECT {tenant_id}::BIGINT AS tenant_id, asset_id, signal, "
            f"value_bool::BOOLEAN AS value_bool, value_num::DOUBLE AS value_num, "
            f"value_text::VARCHAR AS value_text, value_time::TIMESTAMPTZ AS value_time, "
            f"observed_at, evidence_id, NULL::BIGINT AS ledger_index FROM ({select}) "
            f"ORDER BY {order}) TO '{folder / 'c-bench.parquet'}' "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {COMPACT_ROW_GROUP_ROWS})"
        ).fetchone()
        total += int(rows[0]) if rows else 0
    connection.close()
    return total


def _register(app: App, size: Size) -> int:
    """Create the tenant, its sources, evidence, assets and fact file rows; return its id."""
    with transaction(app.sessions) as session:
        tenant = tenants.create(session=session, slug=SLUG)
        tenant_id = tenant.id
        sources = [Source(tenant_id=tenant_id, kind=name, name=name) for name in _sources()]
        session.add_all(sources)
        session.flush()
        session.execute(
            insert(Asset),
            [
                {"id": aid, "tenant_id": tenant_id, "kind": kind, "display_name": f"{kind}-{aid}"}
                for aid, kind in _fleet(size)
            ],
        )
        evidence = []
        for index in range(size.days):
            day = START + timedelta(days=index)
            for number, source in enumerate(sources, start=1):
                evidence.append(
                    _evidence_row(tenant_id, source.id, index * len(sources) + number, day)
                )
        session.execute(insert(Evidence), evidence)
    return tenant_id


def _evidence_row(
    tenant_id: int, source_id: int, evidence_id: int, day: datetime
) -> dict[str, Any]:
    """One day's evidence of one source, stored the evening of the day it observed."""
    return {
        "id": evidence_id,
        "tenant_id": tenant_id,
        "source_id": source_id,
        "sha256": f"{evidence_id:064x}",
        "size": 1,
        "media_type": "application/json",
        "original_name": f"e{evidence_id}.json",
        "connector": "bench",
        "connector_version": "1",
        "collector": "bench",
        "collected_at": day + timedelta(hours=17),
        "stored_at": day + timedelta(hours=17),
        "observed_from": day + timedelta(hours=6),
        "observed_to": day + timedelta(hours=16),
        "observed_origin": "payload",
    }


def build(data_dir: Path, size: Size) -> int:
    """Generate and register the tenant; return the number of facts."""
    settings = Settings(data_dir=data_dir)
    app = App(settings=settings)
    upgrade(app.engine)
    try:
        tenant_id = _register(app, size)
        declared = _signal_types()
        types = {s[2]: declared[s[2]] for s in SIGNALS}
        total = _write_parquet(settings.facts_dir, tenant_id, size, types)
        days = [(START + timedelta(days=i)).date() for i in range(size.days)]
        with transaction(app.sessions) as session:
            session.add_all(
                FactFile(
                    tenant_id=tenant_id,
                    day=day,
                    last_day=day,
                    path=f"tenant={tenant_id}/day={day.isoformat()}/c-bench.parquet",
                    rows=0,
                    evidence_count=len(_sources()),
                )
                for day in days
            )
        # As compaction does for each day file: its snapshot counts and KEV matches.
        files = [
            settings.facts_dir / f"tenant={tenant_id}/day={day.isoformat()}/c-bench.parquet"
            for day in days
        ]
        with connect_duckdb() as connection:
            listed = connection.execute(
                f"SELECT DISTINCT value_text FROM {parquet_sql(files)} WHERE signal = 'kev.listed'"
            ).fetchall()
            for path in files:
                write_snapshots(connection, fact_file=path, kev=[str(r[0]) for r in listed])
        # As ingest does once a month has settled: its day files become one file.
        end = (START + timedelta(days=size.days)).date()
        with transaction(app.sessions) as session:
            months = months_to_merge(
                session=session, tenant_id=tenant_id, before=end - MONTHS_SETTLE
            )
        for month in months:
            compact_month(
                sessions=app.sessions,
                tenant_id=tenant_id,
                facts_dir=settings.facts_dir,
                month=month,
            )
    finally:
        app.close()
    return total


def _signal_types() -> dict[str, str]:
    from claimready.controls.pack import signal_types

    return signal_types()


# --- measurements (each in a child process) -------------------------------------------


def _app(data_dir: Path) -> App:
    return App(settings=Settings(data_dir=data_dir))


def _peak() -> int:
    """This process's peak resident set size in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _request(size: Size, window: timedelta) -> EvaluateRequest:
    return EvaluateRequest(
        tenant_slug=SLUG,
        as_of=START + timedelta(days=size.days),
        window=window,
        control_ids=CONTROLS,
    )


def measure_full(data_dir: Path, size: Size) -> dict[str, Any]:
    """Every control at every daily step of the whole period."""
    app = _app(data_dir)
    started = time.perf_counter()
    result = evaluate(app=app, request=_request(size, timedelta(days=size.days)))
    seconds = time.perf_counter() - started
    statuses: dict[str, int] = defaultdict(int)
    for item in result.controls:
        for step in item.steps:
            statuses[step.status] += 1
    app.close()
    steps = sum(len(c.steps) for c in result.controls)
    return {"seconds": seconds, "steps": steps, "statuses": dict(statuses)}


def measure_asof(data_dir: Path, size: Size) -> dict[str, Any]:
    """Every control at one moment, measured three times (the best is reported)."""
    app = _app(data_dir)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        result = evaluate(app=app, request=_request(size, timedelta(0)))
        runs.append(time.perf_counter() - started)
    app.close()
    return {
        "seconds": min(runs),
        "runs": runs,
        "statuses": {c.control.id: c.at.status for c in result.controls},
    }


def _files(data_dir: Path) -> list[str]:
    return sorted(str(p) for p in (data_dir / "facts").rglob("*.parquet"))


def measure_floor(data_dir: Path, size: Size) -> dict[str, Any]:
    """A raw DuckDB scan of the same Parquet: facts and newest observation per signal."""
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    files = _files(data_dir)
    started = time.perf_counter()
    rows = connection.execute(
        "SELECT signal, count(*), max(observed_at) FROM read_parquet(?) GROUP BY signal", [files]
    ).to_arrow_table()
    seconds = time.perf_counter() - started
    facts = sum(rows.column(1).to_pylist())
    return {"seconds": seconds, "facts": facts, "signals": rows.num_rows}


def _load_assets(
    files: list[str], sample: list[int]
) -> dict[int, dict[str, list[tuple[Any, ...]]]]:
    """The sampled assets' facts, per asset and signal, sorted by (observed_at, evidence_id)."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    table = connection.execute(
        "SELECT asset_id, signal, observed_at, evidence_id, value_bool, value_num, value_text, "
        "value_time FROM read_parquet(?) WHERE list_contains(?, asset_id) "
        "OR signal = 'kev.listed' ORDER BY asset_id, signal, observed_at, evidence_id",
        [files, sample],
    ).to_arrow_table()
    facts: dict[int, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))
    for asset_id, signal, observed, evidence, vb, vn, vt, vtime in zip(
        *(c.to_pylist() for c in table.columns), strict=True
    ):
        value = next((v for v in (vb, vn, vt, vtime) if v is not None), None)
        facts[asset_id][signal].append((observed, evidence, value))
    return facts


@dataclass
class _AssetFacts:
    """One asset's facts, indexed for lookups at a step."""

    signals: dict[str, list[tuple[Any, ...]]]
    times: dict[str, list[datetime]]
    first: datetime
    last: datetime

    @classmethod
    def of(cls, signals: dict[str, list[tuple[Any, ...]]]) -> _AssetFacts:
        times = {s: [f[0] for f in rows] for s, rows in signals.items()}
        return cls(
            signals,
            times,
            min(t[0] for t in times.values()),
            max(t[-1] for t in times.values()),
        )

    def latest(self, signal: str, t: datetime) -> tuple[Any, ...] | None:
        """The fact of ``signal`` observed last at or before ``t``."""
        index = bisect.bisect_right(self.times.get(signal, []), t)
        return self.signals[signal][index - 1] if index else None


def _snapshot(
    facts: _AssetFacts, signal: str, t: datetime, fresh: timedelta, kev: dict[str, datetime]
) -> tuple[float | None, list[datetime] | None]:
    """Count and KEV listing times of ``signal`` in the asset's latest fresh domain snapshot."""
    domain = signal.split(".", 1)[0] + "."
    latest = max(
        (f[0] for s in facts.signals if s.startswith(domain) for f in [facts.latest(s, t)] if f),
        default=None,
    )
    if latest is None or latest <= t - fresh:
        return None, None
    values = [f[2] for f in facts.signals.get(signal, []) if f[0] == latest]
    return float(len(values)), [kev[v] for v in values if v in kev]


def _row(
    control: Control,
    facts: _AssetFacts,
    t: datetime,
    kev: dict[str, datetime],
    tenant_first: dict[str, datetime],
) -> dict[str, Any]:
    """The pivot row of one asset at one step, as the reference evaluator reads it."""
    row: dict[str, Any] = {STEP_COLUMN: t}
    for signal, features in control.predicate.needs.items():
        fresh = control.spec.freshness_of(signal)
        if VALUE in features:
            fact = facts.latest(signal, t)
            row[column(signal)] = fact[2] if fact and fact[0] > t - fresh else None
        if COUNT in features or KEV in features:
            row[column(signal, COUNT)], row[column(signal, KEV)] = _snapshot(
                facts, signal, t, fresh, kev
            )
        if EVER in features:
            mine = facts.times.get(signal)
            first = tenant_first.get(signal)
            row[column(signal, EVER)] = (
                True if mine and mine[0] <= t else False if first and first <= t else None
            )
    return row


def measure_python(data_dir: Path, size: Size) -> dict[str, Any]:
    """Per-asset Python evaluation of every control and step on a sample, extrapolated."""
    fleet = _fleet(size)
    stride = max(1, len(fleet) // 100)
    sample = [aid for aid, _ in fleet[::stride]]
    kinds = dict(fleet)
    controls = [baseline().controls[c] for c in CONTROLS]
    started = time.perf_counter()
    loaded = _load_assets(_files(data_dir), sample)
    kev = {v: o for o, _, v in reversed(loaded[1].pop("kev.listed", []))}
    assets = {aid: _AssetFacts.of(signals) for aid, signals in loaded.items() if signals}
    tenant_first: dict[str, datetime] = {}
    for facts in assets.values():
        for signal, times in facts.times.items():
            tenant_first[signal] = min(times[0], tenant_first.get(signal, times[0]))
    steps = [START + timedelta(days=i) for i in range(size.days + 1)]
    verdicts = 0
    for control in controls:
        retire = control.spec.retire_delta
        for aid, facts in assets.items():
            if kinds[aid] not in control.spec.scope.kinds:
                continue
            for t in steps:
                if facts.first <= t < facts.last + retire:
                    evaluate_row(control.predicate, _row(control, facts, t, kev, tenant_first))
                    verdicts += 1
    seconds = time.perf_counter() - started
    factor = len(fleet) / len(sample)
    return {
        "seconds": seconds * factor,
        "sample": len(sample),
        "factor": factor,
        "verdicts": verdicts,
    }


MEASURES = {
    "full": measure_full,
    "asof": measure_asof,
    "floor": measure_floor,
    "python": measure_python,
}


def _child(name: str, data_dir: Path, size: Size) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; return its figures and peak memory."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.controls_eval",
            "--child",
            name,
            "--data",
            str(data_dir),
            "--assets",
            str(size.assets),
            "--days",
            str(size.days),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, load average {load}"
    )


def _verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


def _report(size: Size, facts: int, results: dict[str, dict[str, Any]]) -> None:
    """Print every figure next to its target and the ratios to the floor and to Python."""
    gib = 1 << 30
    full, asof, floor, python = (results[k] for k in ("full", "asof", "floor", "python"))
    print(f"machine: {_machine()}")
    print(f"tenant: {size.assets:,} assets, {size.days} days, {facts:,} facts")
    print(
        f"full evaluation, {len(CONTROLS)} controls: {full['seconds']:.2f} s for "
        f"{full['steps']:,} control-steps, target {TARGET_FULL_S:.0f} s "
        f"({_verdict(full['seconds'], TARGET_FULL_S)}); peak {full['peak'] / gib:.2f} GiB, "
        f"target {TARGET_PEAK / gib:.0f} GiB ({_verdict(full['peak'], TARGET_PEAK)})"
    )
    print(
        f"as-of query: {asof['seconds'] * 1000:.0f} ms (best of 3), "
        f"target {TARGET_ASOF_S * 1000:.0f} ms ({_verdict(asof['seconds'], TARGET_ASOF_S)}); "
        f"peak {asof['peak'] / gib:.2f} GiB"
    )
    print(
        f"floor, raw DuckDB scan: {floor['seconds']:.2f} s for {floor['facts']:,} facts; "
        f"full evaluation {full['seconds'] / floor['seconds']:.1f}x the floor, "
        f"as-of {asof['seconds'] / floor['seconds']:.2f}x"
    )
    print(
        f"per-asset Python: {python['seconds']:.0f} s, extrapolated x{python['factor']:.0f} "
        f"from {python['sample']} assets; full evaluation "
        f"{python['seconds'] / full['seconds']:.1f}x faster"
    )


def main(argv: list[str] | None = None) -> None:
    """Generate the tenant, run every measurement in its own process and print the figures."""
    parser = argparse.ArgumentParser(prog="bench controls")
    parser.add_argument("--quick", action="store_true", help="500 assets over 30 days")
    parser.add_argument("--child", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--assets", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="reuse or keep the generated tenant here")
    args = parser.parse_args(argv)
    if args.child:
        result = MEASURES[args.child](args.data, Size(args.assets, args.days))
        print(json.dumps({**result, "peak": _peak()}, default=str))
        return
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="claimready-bench-") as scratch:
        data_dir = args.keep or Path(scratch)
        started = time.perf_counter()
        if not (data_dir / "facts").exists():
            build(data_dir, size)
        files = _files(data_dir)
        counted = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()
        facts = int(counted[0]) if counted else 0
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
        results = {
            name: _child(name, data_dir, size) for name in ("floor", "asof", "full", "python")
        }
    _report(size, facts, results)


if __name__ == "__main__":
    main()
