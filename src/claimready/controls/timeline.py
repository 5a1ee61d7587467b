"""Evaluate controls over a series of steps in one vectorized DuckDB query per control.

For a control and each step ``t`` of a window:

1. *in scope*: assets of the scope's kinds that exist at ``t``, i.e. whose
   first fact from any source was observed at or before ``t`` and whose last
   fact is less than ``retire_after`` before ``t`` (an asset seen by the RMM
   but never by the EDR is in scope for EDR controls);
2. *pivot*: for each signal the predicate reads, the asset's latest fact
   observed at or before ``t`` (an ASOF join), kept only when it is fresher
   than the control's freshness window; otherwise NULL (unknown);
3. *predicate*: the compiled SQL gives TRUE, FALSE or NULL per asset and step
   (pass, fail, unverified); assets under an active exception are
   ``excepted`` and count neither way;
4. *aggregate*: counts per step and asset kind, the evidence cited, and how
   many assets rest on evidence the ledger stored only after ``t``
   (backfilled, not provably before).

Facts can be restricted to evidence stored before a moment (``stored_before``).
"""

# SQL here is built from validated control packs only: signal names are checked against the
# declared vocabulary, literals are escaped, and user input never reaches it unquoted.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from claimready.controls.expr import (
    COUNT,
    EVER,
    KEV,
    STEP_COLUMN,
    VALUE,
    column,
    compile_sql,
)
from claimready.controls.pack import Control
from claimready.facts.store import connect_duckdb, parquet_sql, read_facts, sql_text
from claimready.timeutil import UTC, format_utc

PASS = "pass"  # noqa: S105 - a status, not a secret
FAIL = "fail"
UNVERIFIED = "unverified"
EXCEPTED = "excepted"
KEV_SIGNAL = "kev.listed"
TAG_SIGNAL = "asset.tag"
_VALUE_COLUMNS = {
    "bool": "value_bool",
    "number": "value_num",
    "text": "value_text",
    "time": "value_time",
}


@dataclass(frozen=True, slots=True)
class ExceptionWindow:
    """An exception as evaluation needs it: which assets (None: all), from when, until when."""

    control_id: str
    asset_id: int | None
    starts_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class FactSource:
    """Where a tenant's facts are and what to join them with."""

    files: Sequence[Path]
    tenant_id: int
    asset_kinds: dict[int, str]
    stored_at: dict[int, datetime]
    stored_before: datetime | None = None
    exceptions: Sequence[ExceptionWindow] = ()
    #: The first and last observed (UTC) day of each file, in the order of ``files``.
    days: Sequence[tuple[date, date]] = ()
    #: The tenant's folder of fact files, where its summary is kept (None: not kept).
    cache: Path | None = None


@dataclass(frozen=True, slots=True)
class KindCounts:
    """Counts of one asset kind at one step."""

    kind: str
    in_scope: int
    passing: int
    failing: int
    unverified: int
    excepted: int
    backfilled: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """A control's status at one step, with its counts and the evidence cited."""

    control_id: str
    at: datetime
    status: str
    in_scope: int
    passing: int
    failing: int
    unverified: int
    excepted: int
    backfilled: int
    coverage: float | None
    evidence_ids: tuple[int, ...] = ()
    kinds: tuple[KindCounts, ...] = field(default_factory=tuple)

    @property
    def provable(self) -> bool:
        """True when every deciding fact was stored in the ledger before the step."""
        return self.backfilled == 0


@dataclass(frozen=True, slots=True)
class AssetResult:
    """One asset's status at one step, with the values it was judged on."""

    asset_id: int
    kind: str
    status: str
    values: dict[str, Any]
    evidence_ids: tuple[int, ...]
    backfilled: bool


def step_series(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Steps from ``start`` (aligned down to the step) up to and including ``end``."""
    seconds = int(step.total_seconds())
    first = datetime.fromtimestamp(int(start.timestamp()) // seconds * seconds, tz=UTC)
    steps: list[datetime] = []
    current = first
    while current <= end:
        steps.append(current)
        current += step
    return steps


def _ts(value: datetime) -> str:
    return f"TIMESTAMPTZ '{format_utc(value)}'"


def connect(source: FactSource) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views ``facts`` and ``life`` of the source."""
    connection = connect_duckdb()
    evidence = pa.table(
        {
            "evidence_id": pa.array(list(source.stored_at), pa.int64()),
            "stored_at": pa.array(list(source.stored_at.values()), pa.timestamp("us", tz="UTC")),
        }
    )
    assets = pa.table(
        {
            "asset_id": pa.array(list(source.asset_kinds), pa.int64()),
            "kind": pa.array(list(source.asset_kinds.values()), pa.string()),
        }
    )
    exceptions = pa.table(
        {
            "control_id": pa.array([e.control_id for e in source.exceptions], pa.string()),
            "asset_id": pa.array([e.asset_id for e in source.exceptions], pa.int64()),
            "starts_at": pa.array(
                [e.starts_at for e in source.exceptions], pa.timestamp("us", tz="UTC")
            ),
            "expires_at": pa.array(
                [e.expires_at for e in source.exceptions], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    connection.register("evidence_arrow", evidence)
    connection.register("assets_arrow", assets)
    connection.register("exceptions_arrow", exceptions)
    connection.execute("CREATE TEMP TABLE ev AS SELECT * FROM evidence_arrow")
    connection.execute("CREATE TEMP TABLE asset_kinds AS SELECT * FROM assets_arrow")
    connection.execute("CREATE TEMP TABLE exc AS SELECT * FROM exceptions_arrow")
    if source.files:
        stored = (
            f" AND ev.stored_at < {_ts(source.stored_before)}"
            if source.stored_before is not None
            else ""
        )
        connection.execute(
            f"""CREATE TEMP VIEW facts AS
            SELECT f.asset_id, f.signal, f.value_bool, f.value_num, f.value_text, f.value_time,
                   f.observed_at, f.evidence_id, ev.stored_at
            FROM {parquet_sql(source.files)} f JOIN ev ON ev.evidence_id = f.evidence_id
            WHERE f.tenant_id = {int(source.tenant_id)}{stored}"""
        )
    else:
        connection.execute(
            """CREATE TEMP VIEW facts AS SELECT
            NULL::BIGINT AS asset_id, NULL::VARCHAR AS signal, NULL::BOOLEAN AS value_bool,
            NULL::DOUBLE AS value_num, NULL::VARCHAR AS value_text,
            NULL::TIMESTAMPTZ AS value_time, NULL::TIMESTAMPTZ AS observed_at,
            NULL::BIGINT AS evidence_id, NULL::TIMESTAMPTZ AS stored_at WHERE FALSE"""
        )
    connection.execute(
        """CREATE TEMP TABLE life AS
        SELECT f.asset_id, a.kind, min(f.observed_at) AS first_seen,
               max(f.observed_at) AS last_seen
        FROM facts f JOIN asset_kinds a ON a.asset_id = f.asset_id
        GROUP BY f.asset_id, a.kind"""
    )
    return connection


def _scope_sql(control: Control, steps: Sequence[datetime]) -> str:
    spec = control.spec
    kinds = ", ".join(sql_text(k) for k in spec.scope.kinds)
    retire = int(spec.retire_delta.total_seconds())
    tags = ""
    if spec.scope.tags:
        listed = ", ".join(sql_text(t) for t in spec.scope.tags)
        tags = (
            f" AND l.asset_id IN (SELECT asset_id FROM facts WHERE signal = '{TAG_SIGNAL}'"
            f" AND value_text IN ({listed}))"
        )
    series = ", ".join(_ts(s) for s in steps)
    return (
        f"SELECT s.t, l.asset_id, l.kind FROM (SELECT unnest([{series}]) AS t) s "
        f"JOIN life l ON l.first_seen <= s.t "
        f"AND epoch(s.t) < epoch(l.last_seen) + {retire} "
        f"WHERE l.kind IN ({kinds}){tags}"
    )


def _window(lower: datetime, upper: datetime) -> str:
    """Only facts that can be fresh at some step: the Parquet scan skips files and row
    groups outside by their observed_at statistics. A fact older than the first step's
    freshness, or newer than the last step, never decides a value."""
    return f" AND observed_at > {_ts(lower)} AND observed_at <= {_ts(upper)}"


def _value_table(signal: str, value_type: str, window: str) -> str:
    col = _VALUE_COLUMNS[value_type]
    return (
        f"SELECT asset_id, observed_at, arg_max({col}, evidence_id) AS v, "
        f"max(evidence_id) AS e, arg_max(stored_at, evidence_id) AS st "
        f"FROM facts WHERE signal = {sql_text(signal)}{window} GROUP BY asset_id, observed_at"
    )


def domain_filter(column_sql: str, signal: str) -> str:
    """SQL that holds for signals of ``signal``'s domain (its name up to the first dot).

    A range rather than ``LIKE``, so Parquet scans skip other signals' row groups.
    """
    domain = signal.split(".", 1)[0]
    return f"({column_sql} >= {sql_text(domain + '.')} AND {column_sql} < {sql_text(domain + '/')})"


def _snapshot_table(signal: str, with_kev: bool, window: str) -> str:
    kev_join = ""
    kev_col = "NULL::TIMESTAMPTZ[] AS kt"
    if with_kev:
        kev_join = (
            f" LEFT JOIN (SELECT value_text AS cve, min(observed_at) AS listed FROM facts "
            f"WHERE signal = '{KEV_SIGNAL}' GROUP BY value_text) k "
            f"ON f.signal = {sql_text(signal)} AND k.cve = f.value_text"
        )
        kev_col = (
            f"coalesce(list(k.listed) FILTER (WHERE f.signal = {sql_text(signal)} "
            f"AND k.listed IS NOT NULL), []::TIMESTAMPTZ[]) AS kt"
        )
    return (
        f"SELECT f.asset_id, f.observed_at, "
        f"count(*) FILTER (WHERE f.signal = {sql_text(signal)}) AS n, {kev_col}, "
        f"max(f.evidence_id) AS e, max(f.stored_at) AS st "
        f"FROM facts f{kev_join} WHERE {domain_filter('f.signal', signal)}"
        f"{window.replace('observed_at', 'f.observed_at')} "
        f"GROUP BY f.asset_id, f.observed_at"
    )


def _fresh(alias: str, freshness: int) -> str:
    return f"epoch({alias}.observed_at) > epoch(g.t) - {freshness}"


def pivot_sql(control: Control, steps: Sequence[datetime], types: dict[str, str]) -> str:
    """SQL with one row per in-scope asset and step: the fresh values, evidence, verdict."""
    window = _window(min(steps) - control.spec.longest_freshness(), max(steps))
    joins: list[str] = []
    columns: list[str] = []
    cited: list[str] = []
    stored: list[str] = []
    for index, (signal, features) in enumerate(control.predicate.needs.items()):
        alias = f"x{index}"
        freshness = int(control.spec.freshness_of(signal).total_seconds())
        fresh = _fresh(alias, freshness)
        if VALUE in features:
            joins.append(
                f"ASOF LEFT JOIN ({_value_table(signal, types[signal], window)}) {alias} "
                f"ON g.asset_id = {alias}.asset_id AND g.t >= {alias}.observed_at"
            )
            columns.append(f'CASE WHEN {fresh} THEN {alias}.v END AS "{column(signal)}"')
        if COUNT in features or KEV in features:
            snap = f"{alias}n"
            joins.append(
                f"ASOF LEFT JOIN ({_snapshot_table(signal, KEV in features, window)}) {snap} "
                f"ON g.asset_id = {snap}.asset_id AND g.t >= {snap}.observed_at"
            )
            snap_fresh = _fresh(snap, freshness)
            columns.append(f'CASE WHEN {snap_fresh} THEN {snap}.n END AS "{column(signal, COUNT)}"')
            columns.append(f'CASE WHEN {snap_fresh} THEN {snap}.kt END AS "{column(signal, KEV)}"')
            cited.append(f"CASE WHEN {snap_fresh} THEN {snap}.e END")
            stored.append(f"CASE WHEN {snap_fresh} THEN {snap}.st END")
        if EVER in features:
            ever = f"{alias}f"
            joins.append(
                f"LEFT JOIN (SELECT asset_id, min(observed_at) AS first FROM facts "
                f"WHERE signal = {sql_text(signal)} GROUP BY asset_id) {ever} "
                f"ON g.asset_id = {ever}.asset_id"
            )
            columns.append(
                f"CASE WHEN {ever}.first <= g.t THEN TRUE WHEN (SELECT min(observed_at) FROM facts "
                f"WHERE signal = {sql_text(signal)}) <= g.t THEN FALSE END "
                f'AS "{column(signal, EVER)}"'
            )
        if VALUE in features:
            cited.append(f"CASE WHEN {fresh} THEN {alias}.e END")
            stored.append(f"CASE WHEN {fresh} THEN {alias}.st END")
    excepted = (
        f"EXISTS (SELECT 1 FROM exc WHERE exc.control_id = {sql_text(control.id)} "
        f"AND (exc.asset_id IS NULL OR exc.asset_id = g.asset_id) "
        f"AND exc.starts_at <= g.t AND g.t < exc.expires_at)"
    )
    evidence = "[" + ", ".join(cited) + "]" if cited else "[]::BIGINT[]"
    newest = f"greatest({', '.join(stored)})" if stored else "NULL::TIMESTAMPTZ"
    return (
        f"SELECT g.t AS {STEP_COLUMN}, g.asset_id, g.kind, {', '.join([*columns, ''])}"
        f"list_filter({evidence}, x -> x IS NOT NULL) AS cited, {newest} AS newest_stored, "
        f"{excepted} AS excepted "
        f"FROM ({_scope_sql(control, steps)}) g {' '.join(joins)}"
    )


def _verdict_sql(control: Control, steps: Sequence[datetime], types: dict[str, str]) -> str:
    predicate = compile_sql(control.predicate)
    return f"SELECT *, ({predicate}) AS r FROM ({pivot_sql(control, steps, types)}) p"


_AGGREGATE = """
SELECT t, kind, count(*) AS in_scope,
    count(*) FILTER (WHERE excepted) AS excepted,
    count(*) FILTER (WHERE NOT excepted AND r) AS passing,
    count(*) FILTER (WHERE NOT excepted AND NOT r) AS failing,
    count(*) FILTER (WHERE NOT excepted AND r IS NULL) AS unverified,
    count(*) FILTER (WHERE NOT excepted AND newest_stored > t) AS backfilled,
    list_distinct(flatten(list(cited))) AS cited
FROM ({inner}) v GROUP BY t, kind ORDER BY t, kind
"""


def _status(
    *, passing: int, failing: int, unverified: int, coverage: float | None, max_failing: int | None
) -> str:
    eligible = passing + failing + unverified
    if eligible == 0:
        return UNVERIFIED
    if max_failing is not None:
        if failing > max_failing:
            return FAIL
        return PASS if failing + unverified <= max_failing else UNVERIFIED
    share = coverage if coverage is not None else 1.0
    if passing / eligible >= share:
        return PASS
    if (passing + unverified) / eligible < share:
        return FAIL
    return UNVERIFIED


def combine(
    control: Control, at: datetime, kinds: Sequence[KindCounts], cited: set[int]
) -> StepResult:
    """The control's status at one step from its per-kind counts and threshold."""
    threshold = control.spec.threshold
    total = {
        name: sum(getattr(k, name) for k in kinds)
        for name in ("in_scope", "passing", "failing", "unverified", "excepted", "backfilled")
    }
    statuses = [
        _status(
            passing=total["passing"],
            failing=total["failing"],
            unverified=total["unverified"],
            coverage=threshold.coverage,
            max_failing=threshold.max_failing,
        )
    ]
    for kind in kinds:
        if kind.kind in threshold.kinds:
            eligible = kind.passing + kind.failing + kind.unverified
            if eligible:
                statuses.append(
                    _status(
                        passing=kind.passing,
                        failing=kind.failing,
                        unverified=kind.unverified,
                        coverage=threshold.kinds[kind.kind],
                        max_failing=None,
                    )
                )
    status = FAIL if FAIL in statuses else UNVERIFIED if UNVERIFIED in statuses else PASS
    eligible = total["passing"] + total["failing"] + total["unverified"]
    return StepResult(
        control_id=control.id,
        at=at,
        status=status,
        coverage=total["passing"] / eligible if eligible else None,
        evidence_ids=tuple(sorted(cited)),
        kinds=tuple(kinds),
        **total,
    )


def evaluate_steps(
    connection: duckdb.DuckDBPyConnection,
    *,
    control: Control,
    steps: Sequence[datetime],
    types: dict[str, str],
) -> list[StepResult]:
    """The control at every step, in one query."""
    if not steps:
        return []
    sql = _AGGREGATE.format(inner=_verdict_sql(control, steps, types))
    rows = [tuple(r.values()) for r in read_facts(connection, sql).to_pylist()]
    by_step: dict[datetime, tuple[list[KindCounts], set[int]]] = {}
    for t, kind, in_scope, excepted, passing, failing, unverified, backfilled, cited in rows:
        counts, ids = by_step.setdefault(t, ([], set()))
        counts.append(
            KindCounts(kind, in_scope, passing, failing, unverified, excepted, backfilled)
        )
        ids.update(int(e) for e in cited or ())
    results = []
    for step in steps:
        counts, ids = by_step.get(step, ([], set()))
        results.append(combine(control, step, counts, ids))
    return results


def evaluate_assets(
    connection: duckdb.DuckDBPyConnection,
    *,
    control: Control,
    at: datetime,
    types: dict[str, str],
) -> list[AssetResult]:
    """Every in-scope asset's status at one moment, with the values it was judged on."""
    sql = f"SELECT * FROM ({_verdict_sql(control, [at], types)}) v ORDER BY asset_id"
    results = []
    for row in read_facts(connection, sql).to_pylist():
        verdict = row["r"]
        status = (
            EXCEPTED
            if row["excepted"]
            else PASS
            if verdict is True
            else FAIL
            if verdict is False
            else UNVERIFIED
        )
        values = {s: row.get(column(s)) for s in control.predicate.signals}
        newest = row["newest_stored"]
        results.append(
            AssetResult(
                asset_id=int(row["asset_id"]),
                kind=str(row["kind"]),
                status=status,
                values=values,
                evidence_ids=tuple(sorted({int(e) for e in row["cited"] or ()})),
                backfilled=newest is not None and newest > at,
            )
        )
    return results
