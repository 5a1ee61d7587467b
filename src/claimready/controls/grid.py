"""Evaluate many controls over many steps from one read of the facts they need.

The engine behind :func:`claimready.controls.service.evaluate`. It gives the
same results as the per-control SQL of :mod:`claimready.controls.timeline`
(a property test holds the two equal) at a fraction of the cost, because it
reads each fact once per evaluation instead of once per control and signal:

1. Every signal the controls read is fetched once from the Parquet files of
   the days that can matter (no older than the largest freshness window
   before the first step, no newer than the last step): one DuckDB query per
   group of signals with about the same window, or per value type when the
   steps span many days.
2. Facts are placed on a grid of assets by steps: a fact falls in the first
   step at or after its observation; per cell the newest fact wins (ties go
   to the newest evidence), and each step carries forward the newest fact
   of the steps before it. This is the "latest value at or before the step"
   of an ASOF join, for every asset and step at once.
3. For each control, the in-scope cells (asset kind, first and last
   observation, tags, from :mod:`claimready.facts.summary`) form a pivot
   with one row per asset and step; values older than the control's
   freshness become unknown. The predicate, compiled to DuckDB SQL, is
   evaluated over that pivot, vectorized.
4. Counts per step and asset kind, the evidence cited and how many results
   rest on evidence stored only after the step, then the control's status
   per step (:func:`claimready.controls.timeline.combine`).

Multi-valued signals read through ``count()`` and ``kev()`` use snapshots:
the facts of the signal's domain observed at the same moment for an asset.
Memory is bounded by evaluating at most :data:`MAX_CELLS` asset-steps at once.
"""

# SQL here is built from validated control packs and generated file paths only: signal
# names are checked against the declared vocabulary and literals are escaped.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from claimready.arraywork import array_work
from claimready.controls.expr import COUNT, EVER, KEV, STEP_COLUMN, VALUE, column, compile_sql
from claimready.controls.pack import Control
from claimready.controls.timeline import (
    KEV_SIGNAL,
    TAG_SIGNAL,
    ExceptionWindow,
    FactSource,
    KindCounts,
    StepResult,
    combine,
    domain_filter,
)
from claimready.errors import StorageError
from claimready.facts import snapshots
from claimready.facts.store import (
    FACT_SCHEMA,
    connect_duckdb,
    parquet_sql,
    read_facts,
    sql_text,
)
from claimready.facts.summary import first_of, summarize
from claimready.timeutil import UTC, format_utc

MAX_CELLS = 4_000_000
#: Over many days of steps, one read takes signals of at most about this many
#: (asset, signal) pairs, so that reading the next overlaps placing the last.
BULKY_REPORTS = 12_000
_NO_FACTS = "no_facts"
log = logging.getLogger(__name__)
_NONE = -1
_NEVER = np.iinfo(np.int64).max
_EARLIEST = np.iinfo(np.int64).min
_TIMESTAMP = pa.timestamp("us", tz="UTC")
#: Times given to the predicates: UTC without a zone. Predicates read times only
#: through epoch(), which for a zoned timestamp goes through ICU's calendar and
#: costs 2.4 times as much.
_PLAIN_TIME = pa.timestamp("us")
_VALUE_COLUMN = {
    "bool": "value_bool",
    "number": "value_num",
    "text": "value_text",
    "time": "value_time",
}


def _us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _ts(us: int) -> str:
    return f"TIMESTAMPTZ '{format_utc(_moment(us))}'"


def _fetch(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run a query and return its result as Arrow, logging how long it took."""
    started = time.perf_counter()
    table = read_facts(connection, sql)
    log.debug("%.3f s, %d rows: %s", time.perf_counter() - started, table.num_rows, sql[:120])
    return table


#: A read, given a DuckDB cursor of its own; it returns what places its result.
_Job = Callable[[duckdb.DuckDBPyConnection], Callable[[], None]]
_SCANNED = pa.schema(
    [
        ("code", pa.int16()),
        ("asset_id", pa.int64()),
        ("o", pa.int64()),
        ("e", pa.int64()),
        ("v_bool", pa.bool_()),
        ("v_number", pa.float64()),
        ("v_text", pa.string()),
        ("v_time", pa.int64()),
    ]
)


def _scan(
    footers: _Footers,
    files: Sequence[Path],
    tenant_id: int,
    signals: Sequence[str],
    kinds: Sequence[str],
    window: tuple[int, int],
) -> pa.Table:
    """The tenant's facts of ``signals`` observed in ``(lower, upper]``, read with Arrow.

    Columns: the signal's position among ``signals`` (``code``), ``asset_id``,
    observation and evidence (``o``, ``e``) and the value of each kind (``v_bool``
    ...; times in microseconds). Compacted files are sorted by signal, so only the
    row groups whose statistics can hold the signals (and the window) are read;
    Arrow decodes them faster than a query returns them.
    """
    schema = pa.schema([_SCANNED.field(n) for n in ("code", "asset_id", "o", "e")])
    schema = pa.schema([*schema, *(_SCANNED.field(f"v_{kind}") for kind in kinds)])
    started = time.perf_counter()
    parts = [_scan_file(footers(path), tenant_id, signals, kinds, window, schema) for path in files]
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    log.debug("%.3f s, %d rows: scan of %s", time.perf_counter() - started, table.num_rows, signals)
    return table


def _scan_file(
    footer: _Footer,
    tenant_id: int,
    signals: Sequence[str],
    kinds: Sequence[str],
    window: tuple[int, int],
    schema: pa.Schema,
) -> pa.Table:
    lower, upper = window
    values = [_VALUE_COLUMN[kind] for kind in kinds]
    groups, mixed = footer.groups(tenant_id, signals, window)
    position = {signal: code for code, signal in enumerate(signals)}
    # Compacted files are sorted by signal: most row groups hold one signal, known
    # from their statistics, and their signal column need not be read at all.
    single = [footer.signal[g] for g in groups]
    read_signals = not all(single)
    wanted = ["asset_id", "observed_at", "evidence_id", *values]
    if read_signals:
        wanted.append("signal")
    if mixed:
        wanted.append("tenant_id")
    table = footer.read(groups, wanted, ["signal"])
    if read_signals:
        codes = []
        for chunk in table.column("signal").chunks:
            known = [position.get(name, _NONE) for name in chunk.dictionary.to_pylist()]
            lookup = np.array([*known, _NONE], dtype=np.int16)  # a null reads the last
            codes.append(lookup[pc.fill_null(chunk.indices, len(known)).to_numpy()])
        code = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int16)
    else:
        code = np.repeat(
            np.array([position.get(name or "", _NONE) for name in single], dtype=np.int16),
            [footer.rows[g] for g in groups],
        )
    observed = _microseconds(table.column("observed_at"))
    o = observed.to_numpy()
    keep = (code >= 0) & (o > lower) & (o <= upper) & np.asarray(observed.is_valid())
    if mixed:
        keep &= np.asarray(pc.fill_null(pc.equal(table.column("tenant_id"), tenant_id), False))
    columns = [
        pa.array(code),
        table.column("asset_id"),
        observed,
        table.column("evidence_id"),
        *(
            _microseconds(table.column(name)) if kind == "time" else table.column(name)
            for kind, name in zip(kinds, values, strict=True)
        ),
    ]
    return pa.Table.from_arrays(columns, schema=schema).filter(pa.array(keep))


_SNAPSHOT_ROWS = pa.schema(
    [(name, pa.int64()) for name in ("asset_id", "o", "e", "v", "listed", "m")]
)


def _scan_snapshots(
    footers: _Footers,
    files: Sequence[Path],
    tenant_id: int,
    signal: str,
    listed: dict[str, int] | None,
    window: tuple[int, int],
) -> pa.Table:
    """Snapshot rows of ``signal``'s domain from the files' snapshot files, read with Arrow.

    Columns as the counting query gives them (:data:`_SNAPSHOT_ROWS`): per asset,
    moment and evidence the count of the signal's facts (``v``); with ``listed`` (KEV
    listing times by CVE) also, per CVE the catalog listed, its listing time and how
    many facts have it (``listed``, ``m``; elsewhere no time and 0).
    """
    domain = snapshots.domain(signal) + "."
    times = listed or {}
    cves = pa.array(list(times), pa.string())
    # Listing times by position among ``cves``; the last (not listed) reads none.
    listing = np.append(np.fromiter(times.values(), np.int64, len(times)), _EARLIEST)
    schema = _SNAPSHOT_ROWS if listed is not None else pa.schema(list(_SNAPSHOT_ROWS)[:4])
    parts = []
    for path in files:
        footer = footers(snapshots.snapshot_path(path))
        groups, mixed = footer.groups(tenant_id, [domain], window, prefix=True)
        wanted = ["signal", "asset_id", "observed_at", "evidence_id", "n", "value"]
        table = footer.read(
            groups, [*wanted, "tenant_id"] if mixed else wanted, ["signal", "value"]
        )
        names = table.column("signal")
        ours = _per_dictionary(names, lambda entries: pc.equal(entries, signal), False)
        inside = _per_dictionary(names, lambda entries: pc.starts_with(entries, domain), False)
        when = listing[
            _per_dictionary(
                table.column("value"),
                lambda entries: pc.index_in(entries, value_set=cves),
                len(cves),
            )
        ]
        plain = np.asarray(table.column("value").is_null())
        observed = _microseconds(table.column("observed_at")).to_numpy()
        n = table.column("n").to_numpy()
        keep = inside & (observed > window[0]) & (observed <= window[1])
        if listed is None:
            keep &= plain
        if mixed:
            keep &= np.asarray(pc.fill_null(pc.equal(table.column("tenant_id"), tenant_id), False))
        matched = ours & (when != _EARLIEST)
        columns = [
            table.column("asset_id").to_numpy(),
            observed,
            table.column("evidence_id").to_numpy(),
            np.where(ours & plain, n, 0),
            np.where(matched, when, _EARLIEST),
            np.where(matched, n, 0),
        ]
        parts.append(pa.table([column[keep] for column in columns[: len(schema)]], schema=schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _per_dictionary(
    column: pa.ChunkedArray, value: Callable[[pa.Array], pa.Array], missing: bool | int
) -> np.ndarray:
    """Per row of a dictionary-encoded column, ``value`` of its entry: computed by Arrow
    over one dictionary the chunks are made to share (``missing`` for nulls)."""
    unified = pa.table({"c": column}).unify_dictionaries().column("c")
    if not unified.num_chunks:
        return np.zeros(0, dtype=np.asarray(missing).dtype)
    dictionary = unified.chunk(0).dictionary
    values = pc.fill_null(value(dictionary), missing).to_numpy(zero_copy_only=False)
    lookup = np.append(values, missing)  # a null reads the last
    indices = pa.chunked_array([chunk.indices for chunk in unified.chunks], unified.type.index_type)
    found: np.ndarray = lookup[pc.fill_null(indices, len(dictionary)).to_numpy()]
    return found


@dataclass(slots=True)
class _Footer:
    """One Parquet file, opened once per evaluation however many reads use it: its
    metadata and what its row groups' statistics bound.

    Reads go through the file opened here, so they read the very file the
    metadata describes even if it is replaced meanwhile (ingest rewrites a
    snapshot file when the KEV catalog grows).
    """

    path: Path
    handle: pa.NativeFile
    metadata: pq.FileMetaData
    rows: list[int]
    #: Per row group: the least and greatest signal (None: no statistics).
    signals: list[tuple[str, str] | None]
    #: Per row group: its only signal, when it holds one and no nulls.
    signal: list[str | None]
    #: Per row group: the first and last observation in microseconds (None: unknown).
    observed: list[tuple[float, float] | None]
    #: Per row group: the least and greatest tenant (None: no statistics).
    owners: list[tuple[int, int] | None]

    @classmethod
    def of(cls, path: Path) -> _Footer:
        try:
            handle = pa.OSFile(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read the stored facts: {path}: {exc}") from exc
        try:
            metadata = pq.read_metadata(handle)
        except (OSError, pa.ArrowException) as exc:
            handle.close()
            raise StorageError(f"cannot read the stored facts: {path}: {exc}") from exc
        names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
        signal, seen, tenant = (names.index(n) for n in ("signal", "observed_at", "tenant_id"))
        unit = _units(metadata, seen)  # statistics of the observation times, in microseconds
        footer = cls(path, handle, metadata, [], [], [], [], [])
        for number in range(metadata.num_row_groups):
            group = metadata.row_group(number)
            named, observed, owner = (group.column(i).statistics for i in (signal, seen, tenant))
            bounds = (named.min, named.max) if _bounded(named) else None
            footer.rows.append(group.num_rows)
            footer.signals.append(bounds)
            one = bounds is not None and bounds[0] == bounds[1] and named.null_count == 0
            footer.signal.append(bounds[0] if one and bounds is not None else None)
            footer.observed.append(
                (observed.min_raw * unit, observed.max_raw * unit)
                if unit and _bounded(observed)
                else None
            )
            footer.owners.append((owner.min, owner.max) if _bounded(owner) else None)
        return footer

    def groups(
        self,
        tenant_id: int,
        signals: Sequence[str],
        window: tuple[int, int],
        *,
        prefix: bool = False,
    ) -> tuple[list[int], bool]:
        """Row groups that can hold facts of the tenant's ``signals`` (with ``prefix``: of
        signals starting with one of them) in the window, and whether any of them may
        hold another tenant's facts too."""
        lower, upper = window
        groups, mixed = [], False
        for number, named in enumerate(self.signals):
            if named is not None and not any(
                named[0] <= s <= named[1] or (prefix and s <= named[1] and named[0] < _after(s))
                for s in signals
            ):
                continue
            seen = self.observed[number]
            if seen is not None and (seen[1] <= lower or seen[0] > upper):
                continue
            owner = self.owners[number]
            if owner is not None and not owner[0] <= tenant_id <= owner[1]:
                continue
            mixed = mixed or not (owner is not None and owner[0] == owner[1] == tenant_id)
            groups.append(number)
        return groups, mixed

    def read(self, groups: list[int], columns: list[str], dictionaries: list[str]) -> pa.Table:
        """Columns of the row groups, the ``dictionaries`` ones dictionary-encoded."""
        try:
            # Arrow's positioned reads of one file are safe from several threads.
            parquet = pq.ParquetFile(
                self.handle, metadata=self.metadata, read_dictionary=dictionaries
            )
            return parquet.read_row_groups(groups, columns=columns, use_threads=True)
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read the stored facts: {self.path}: {exc}") from exc


class _Footers:
    """The files an evaluation reads, each opened once (:class:`_Footer`) until :meth:`close`."""

    def __init__(self) -> None:
        self._known: dict[Path, _Footer] = {}
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> _Footer:
        with self._lock:
            footer = self._known.get(path)
            if footer is None:
                footer = self._known[path] = _Footer.of(path)
            return footer

    def close(self) -> None:
        with self._lock:
            for footer in self._known.values():
                footer.handle.close()
            self._known.clear()


def _microseconds(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Times as microseconds since the epoch."""
    return column.cast(_TIMESTAMP).cast(pa.int64())


def _units(metadata: pq.FileMetaData, column: int) -> float:
    """Microseconds per stored unit of a time column (0: not a time stored as we know)."""
    described = metadata.schema.column(column)
    if described.physical_type != "INT64":
        return 0
    unit = json.loads(described.logical_type.to_json()).get("timeUnit")
    return {"milliseconds": 1000, "microseconds": 1, "nanoseconds": 0.001}.get(unit, 0)


def _after(prefix: str) -> str:
    """The least text after every text starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _bounded(statistics: pq.Statistics | None) -> bool:
    return statistics is not None and bool(statistics.has_min_max)


def _facts_sql(files: Sequence[Path]) -> str:
    """The fact files to read, or the empty table of facts when there are none."""
    return parquet_sql(files) if files else _NO_FACTS


@dataclass(slots=True)
class _Facts:
    """Facts (or snapshots) as columns, never empty once placed (see :meth:`readable`).

    ``evidence`` holds positions among the tenant's evidence ids. When each row
    rests on one evidence item, ``stored`` is None and the row was stored when
    its evidence was; a snapshot, resting on several, carries the newest.
    """

    observed: np.ndarray
    evidence: np.ndarray
    value: np.ndarray
    valid: np.ndarray
    dictionary: pa.Array | None = None
    stored: np.ndarray | None = None

    def readable(self) -> _Facts:
        """These facts, or one that is never fresh when there are none: index -1 reads it."""
        if len(self.observed):
            return self
        return _Facts(
            np.array([_EARLIEST]),
            np.array([_NONE]),
            np.zeros(1, dtype=self.value.dtype),
            np.zeros(1, dtype=bool),
            self.dictionary,
            None if self.stored is None else np.array([_EARLIEST]),
        )


@dataclass(slots=True)
class _Latest:
    """Facts on a grid: for every cell, the index of the newest fact at or before it (or -1).

    The grid has a row only for assets with facts: ``row_of`` gives an asset's row
    (-1: none), ``index`` is flat, row by row.
    """

    facts: _Facts
    row_of: np.ndarray
    index: np.ndarray


@dataclass(slots=True)
class _Needs:
    """What the controls read of each signal, with the largest freshness that reads it."""

    values: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)
    kev: set[str] = field(default_factory=set)
    ever: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, controls: Sequence[Control]) -> _Needs:
        needs = cls()
        for control in controls:
            for signal, features in control.predicate.needs.items():
                freshness = _freshness(control, signal)
                if VALUE in features:
                    needs.values[signal] = max(freshness, needs.values.get(signal, 0))
                if COUNT in features or KEV in features:
                    needs.snapshots[signal] = max(freshness, needs.snapshots.get(signal, 0))
                if KEV in features:
                    needs.kev.add(signal)
                if EVER in features:
                    needs.ever.add(signal)
        return needs


class _Lookup:
    """Integer ids to positions: a dense table when ids are compact, else a binary search."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.sort(ids)
        self.order = np.argsort(ids, kind="stable")
        top = int(self.ids[-1]) if len(self.ids) else -1
        self.table: np.ndarray | None = None
        # Positions as int32 where they fit: the arrays built from them are half the size.
        self.kind = np.int32 if len(self.ids) < np.iinfo(np.int32).max else np.int64
        if (int(self.ids[0]) if len(self.ids) else 0) >= 0 and top < 4 * len(self.ids) + (1 << 20):
            self.table = np.full(top + 2, _NONE, dtype=self.kind)
            self.table[self.ids] = np.arange(len(self.ids), dtype=self.kind)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Position of each value among the sorted ids, or -1."""
        if not len(self.ids):
            return np.full(len(values), _NONE, dtype=self.kind)
        if self.table is not None:
            outside = len(self.table) - 1  # holds -1
            if len(values) and (int(values.min()) < 0 or int(values.max()) >= outside):
                values = np.where((values >= 0) & (values < outside), values, outside)
            found: np.ndarray = self.table[values]
            return found
        position = np.searchsorted(self.ids, values).clip(0, len(self.ids) - 1)
        return np.where(self.ids[position] == values, position, _NONE).astype(self.kind)


class _Tenant:
    """The tenant's evidence, assets and summary, shared by every chunk of steps."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, source: FactSource) -> None:
        self.connection = connection
        self.source = source
        ids = np.fromiter(source.stored_at, dtype=np.int64, count=len(source.stored_at))
        stored = np.fromiter(
            (_us(s) for s in source.stored_at.values()), dtype=np.int64, count=len(ids)
        )
        self._evidence = _Lookup(ids)
        self.evidence_ids = self._evidence.ids
        cut = _NEVER if source.stored_before is None else _us(source.stored_before)
        # Position -1 (unknown evidence) reads the sentinel at the end: never counts.
        self.evidence_stored = np.append(stored[self._evidence.order], _EARLIEST)
        self.evidence_ok = np.append(stored[self._evidence.order] < cut, False)
        asset_ids = np.fromiter(source.asset_kinds, dtype=np.int64, count=len(source.asset_kinds))
        self._assets = _Lookup(asset_ids)
        self.asset_ids = self._assets.ids
        names = [source.asset_kinds[int(i)] for i in self.asset_ids]
        self.kind_names = sorted(set(names))
        codes = {name: code for code, name in enumerate(self.kind_names)}
        self.asset_kinds = np.array([codes[n] for n in names], dtype=np.int64)
        allowed = None if source.stored_before is None else self.allowed
        self.summary = summarize(
            connection,
            files=source.files,
            tenant_id=source.tenant_id,
            cache=source.cache,
            allowed=allowed,
        )
        self.first = self.per_asset(self.summary, "first", np.minimum)
        self.last = self.per_asset(self.summary, "last", np.maximum)
        signals = pc.dictionary_encode(self.summary.column("signal").combine_chunks())
        self._summary_signals: list[str] = signals.dictionary.to_pylist()
        self._summary_codes = np.asarray(signals.indices)
        self._summary_rows = self.rows(self.summary.column("asset_id").to_numpy())
        self._firsts: dict[str, tuple[np.ndarray, int]] = {}
        self._kev = False
        self._covered: dict[Path, snapshots.Covered | None] = {}
        self._catalog: frozenset[str] | None = None
        self._reports: dict[str, int] | None = None
        self._kev_times: dict[str, int] | None = None
        self._days = dict(zip(source.files, source.days, strict=False))
        self.footers = _Footers()

    @property
    def assets(self) -> int:
        return len(self.asset_ids)

    def evidence_code(self, ids: np.ndarray) -> np.ndarray:
        """Positions of evidence ids among the tenant's (-1, which reads as not counting)."""
        return self._evidence(ids)

    def allowed(self, ids: np.ndarray) -> np.ndarray:
        """Whether each evidence id counts: the tenant's, and stored before the cut."""
        allowed: np.ndarray = self.evidence_ok[self._evidence(ids)]
        return allowed

    def rows(self, asset_ids: np.ndarray) -> np.ndarray:
        """Grid rows of asset ids; -1 for ids that are not the tenant's assets."""
        return self._assets(asset_ids)

    def per_asset(self, table: pa.Table, column_name: str, reduce: np.ufunc) -> np.ndarray:
        """``reduce`` of a summary column per grid row (missing: the reduction's identity)."""
        start = _NEVER if reduce is np.minimum else _EARLIEST
        result = np.full(self.assets, start, dtype=np.int64)
        rows = self.rows(table.column("asset_id").to_numpy())
        known = rows >= 0
        reduce.at(result, rows[known], table.column(column_name).to_numpy()[known])
        return result

    def reported(self, signal: str) -> int:
        """How many assets the summary has reported ``signal`` (a read's size, roughly)."""
        if self._reports is None:
            counts = np.bincount(self._summary_codes, minlength=len(self._summary_signals))
            self._reports = dict(zip(self._summary_signals, counts.tolist(), strict=True))
        return self._reports.get(signal, 0)

    def newest(self, wanted: Callable[[str], bool]) -> np.ndarray:
        """Per grid row, the last observation of any signal ``wanted`` accepts (or none)."""
        codes = [code for code, name in enumerate(self._summary_signals) if wanted(name)]
        chosen = np.isin(self._summary_codes, codes) & (self._summary_rows >= 0)
        newest = np.full(self.assets, _EARLIEST, dtype=np.int64)
        last = self.summary.column("last").to_numpy()
        np.maximum.at(newest, self._summary_rows[chosen], last[chosen])
        return newest

    def firsts(self, signal: str) -> tuple[np.ndarray, int]:
        """Per grid row the first observation of ``signal``, and the tenant's first of it."""
        if signal not in self._firsts:
            rows = first_of(self.summary, signal)
            firsts = rows.column("first")
            tenant_first = pc.min(firsts).as_py() if len(firsts) else None
            self._firsts[signal] = (
                self.per_asset(rows, "first", np.minimum),
                _NEVER if tenant_first is None else int(tenant_first),
            )
        return self._firsts[signal]

    def precomputed(self, path: Path, domain: str, *, with_kev: bool) -> bool:
        """Whether a file's snapshot file can stand for its facts of ``domain``'s snapshots.

        For ``kev()`` every CVE the catalog lists (as this evaluation sees it) must
        have been looked up when the snapshot file was written.
        """
        if path not in self._covered:
            self._covered[path] = snapshots.covered(path)
        covered = self._covered[path]
        if covered is None or domain not in covered.domains:
            return False
        if with_kev and self._catalog is None:
            keys = first_of(self.summary, KEV_SIGNAL).column("key").drop_null()
            self._catalog = frozenset(keys.to_pylist())
        return not with_kev or (self._catalog or frozenset()) <= covered.looked_up

    def kev_table(self) -> str:
        """A table of CVEs and when the KEV catalog first listed each (made once)."""
        if not self._kev:
            listed = first_of(self.summary, KEV_SIGNAL)
            kev = listed.group_by("key", use_threads=False).aggregate([("first", "min")])
            self.connection.register("kev_listed_arrow", kev)
            self.connection.execute("CREATE TABLE kev_listed AS SELECT * FROM kev_listed_arrow")
            self.connection.unregister("kev_listed_arrow")
            self._kev = True
        return "kev_listed"

    def apart(self, files: Sequence[Path]) -> bool:
        """Whether no two of the files hold facts of the same day."""
        if not all(path in self._days for path in files):
            return False
        spans = sorted(self._days[path] for path in files)
        return all(last < day for (_, last), (day, _) in pairwise(spans))

    def kev_times(self) -> dict[str, int]:
        """When the KEV catalog first listed each CVE (microseconds)."""
        if self._kev_times is None:
            listed = first_of(self.summary, KEV_SIGNAL)
            kev = listed.group_by("key", use_threads=False).aggregate([("first", "min")])
            keys, times = kev.column("key").to_pylist(), kev.column("first_min").to_pylist()
            self._kev_times = {k: t for k, t in zip(keys, times, strict=True) if k is not None}
        return self._kev_times

    def files(self, lower: int, upper: int) -> list[Path]:
        """Files of the days that can hold facts observed in ``(lower, upper]``."""
        if not self.source.days:
            return list(self.source.files)
        first, last = _moment(lower).date(), _moment(upper).date()
        return [
            path
            for path, (day, last_day) in zip(self.source.files, self.source.days, strict=True)
            if day <= last and first <= last_day
        ]


class _Chunk:
    """Facts of every needed signal on the grid of one run of steps."""

    def __init__(
        self, tenant: _Tenant, steps: np.ndarray, needs: _Needs, types: dict[str, str]
    ) -> None:
        self.tenant = tenant
        self.types = types
        self.steps = steps
        gaps = np.diff(steps)
        self.uniform = int(gaps[0]) if len(gaps) and bool(np.all(gaps == gaps[0])) else 0
        # Steps over many days make every query large.
        self.bulky = len(tenant.files(int(steps[0]), int(steps[-1]))) > 7
        self.values: dict[str, _Latest] = {}
        self.snapshots: dict[str, _Latest] = {}
        self.kev: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.since = {
            signal: self._since(signal.__eq__, freshness)
            for signal, freshness in needs.values.items()
        }
        # Snapshots first: placing them costs the most per row read.
        self._jobs = [
            self._snapshot_job(signal, freshness, signal in needs.kev)
            for signal, freshness in needs.snapshots.items()
        ]
        self._jobs += [self._values_job(group) for group in self._groups(needs.values)]

    def ready(self, control: Control) -> bool:
        """Whether every signal the control reads is on the grid."""
        return all(
            (VALUE not in features or signal in self.values)
            and ((COUNT not in features and KEV not in features) or signal in self.kev)
            for signal, features in control.predicate.needs.items()
        )

    def load(self, placed: Callable[[], None]) -> None:
        """Read every signal and place it on the grid, calling ``placed`` after each read.

        Reads run two at a time. A read (DuckDB or Arrow, releasing the interpreter)
        also turns its rows into arrays and gives back what places them, which runs
        here, as each read ends, while the next ones go on. At most three results are
        held: two being read, one being placed.
        """
        waiting = list(reversed(self._jobs))
        free = [self.tenant.connection.cursor() for _ in range(2)]
        running: dict[Future[Callable[[], None]], duckdb.DuckDBPyConnection] = {}
        try:
            with ThreadPoolExecutor(max_workers=2) as reader:
                while waiting or running:
                    while waiting and free:
                        cursor = free.pop()
                        running[reader.submit(waiting.pop(), cursor)] = cursor
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    ended = [future for future in running if future in done]
                    for future in ended:
                        free.append(running.pop(future))
                    for future in ended:
                        while waiting and free:
                            cursor = free.pop()
                            running[reader.submit(waiting.pop(), cursor)] = cursor
                        future.result()()
                        placed()
        finally:
            for cursor in free + list(running.values()):
                cursor.close()

    # -- reading ---------------------------------------------------------------

    def _window(self, freshness: int) -> tuple[int, int]:
        return int(self.steps[0]) - freshness, int(self.steps[-1])

    def _since(
        self, wanted: Callable[[str], bool], freshness: int
    ) -> tuple[int, np.ndarray | None]:
        """The earliest observation a read of the ``wanted`` signals needs, and what the
        first step must then find.

        A fact decides only while it is the newest of its asset and is fresh. When every
        asset's last observation (from the summary) of these signals is at or before the
        first step, nothing older than the oldest of those can decide anything, so the
        read starts there rather than a whole freshness window back: an as-of moment
        after the latest evidence reads the last day or so, not a year. Returned with
        it, per grid row, the observation the first step must find (none: not checked),
        since facts the grid drops (evidence it does not count) would make an older one
        decide; :meth:`_settled` checks that.
        """
        start = int(self.steps[0])
        lower = start - freshness
        newest = self.tenant.newest(wanted)
        expected = newest > lower
        if not expected.any() or bool((newest[expected] > start).any()):
            return lower, None
        return int(newest[expected].min()) - 1, np.where(expected, newest, _EARLIEST)

    def _settled(self, latest: _Latest, expected: np.ndarray | None) -> bool:
        """Whether the first step found the observations :meth:`_since` expects."""
        if expected is None:
            return True
        rows = np.flatnonzero(expected != _EARLIEST)
        row = latest.row_of[rows]
        if bool((row < 0).any()):
            return False
        index = latest.index[row * len(self.steps)]
        return bool(np.all(latest.facts.observed[index] == expected[rows]))

    def _where(self, lower: int, upper: int, alias: str = "") -> str:
        return (
            f"WHERE {alias}tenant_id = {int(self.tenant.source.tenant_id)} "
            f"AND {alias}observed_at > {_ts(lower)} AND {alias}observed_at <= {_ts(upper)}"
        )

    def _groups(self, wanted: dict[str, int]) -> list[dict[str, int]]:
        """Signals to read together: windows over about the same files.

        Each query costs about one pass over the files it opens, so signals whose
        windows open nearly the same files share one, while a short window (the
        last days) is not made to open the files of a long one (the last year).
        When the steps themselves span many days, every query is large, so each
        value type gets its own (one value column each, less memory), and a group
        stops at about :data:`BULKY_REPORTS` assets reporting its signals: reads of
        that size are placed while the next ones are read.
        """
        groups: list[dict[str, int]] = []
        for kind in ("bool", "number", "text", "time") if self.bulky else (None,):
            signals = sorted(
                (s for s in wanted if kind in (None, self.types[s])),
                key=lambda s: (self.since[s][0], s),
            )
            current: dict[str, int] = {}
            opened = reports = 0
            upper = int(self.steps[-1])
            for signal in signals:
                count = len(self.tenant.files(self.since[signal][0], upper))
                reported = self.tenant.reported(signal) if self.bulky else 0
                if current and (count * 4 < opened * 3 or reports + reported > BULKY_REPORTS):
                    groups.append(current)
                    current = {}
                if not current:
                    opened, reports = count, 0
                current[signal] = wanted[signal]
                reports += reported
            if current:
                groups.append(current)
        return groups

    def _values_job(self, wanted: dict[str, int]) -> _Job:
        """The read of a group of signals (:func:`_scan`), placing each on the grid.

        The read starts at the earliest window of the group; a fact older than its
        own signal's window never decides anything (it is never fresh).
        """
        signals = sorted(wanted)
        kinds = sorted({self.types[s] for s in signals})
        window = self._window(max(wanted.values()))[0]
        lower = min(self.since[s][0] for s in signals)
        tenant_id = int(self.tenant.source.tenant_id)

        def job(lower: int) -> _Job:
            upper = int(self.steps[-1])
            files = self.tenant.files(lower, upper)

            def read(_: duckdb.DuckDBPyConnection) -> Callable[[], None]:
                table = _scan(self.tenant.footers, files, tenant_id, signals, kinds, (lower, upper))
                by_kind = {kind: self._columns(table, kind, extra="code") for kind in kinds}
                del table
                for kind, columns in by_kind.items():
                    if len(kinds) > 1:
                        codes = [c for c, s in enumerate(signals) if self.types[s] == kind]
                        by_kind[kind] = _renumbered(columns, codes, len(signals))
                return lambda: place(by_kind, bounded=lower > window)

            return read

        def place(by_kind: dict[str, _Columns], *, bounded: bool) -> None:
            for kind, columns in by_kind.items():
                codes = [c for c, s in enumerate(signals) if self.types[s] == kind]
                index = self._grid(columns, groups=len(codes))
                facts = columns.facts.readable()
                for group, code in enumerate(codes):
                    self.values[signals[code]] = _Latest(facts, *index[group])
            settled = (self._settled(self.values[s], self.since[s][1]) for s in signals)
            if bounded and not all(settled):
                self._read(job(window))()

        return job(lower)

    def _read(self, job: _Job) -> Callable[[], None]:
        """Read at once, beside the reads running ahead."""
        with self.tenant.connection.cursor() as cursor:
            return job(cursor)

    @staticmethod
    def _placement(alias: str = "f.") -> str:
        """SQL columns placing a fact: asset, observed and evidence (looked up afterwards)."""
        return (
            f"{alias}asset_id AS asset_id, epoch_us({alias}observed_at) AS o, "
            f"{alias}evidence_id AS e"
        )

    def _columns(
        self, table: pa.Table, kind: str, extra: str | None = None, weights: str | None = None
    ) -> _Columns:
        """Rows read with :meth:`_placement` as arrays: only the tenant's assets, and only
        evidence that counts; evidence by its position among the tenant's evidence ids."""
        code = self.tenant.evidence_code(table.column("e").to_numpy())
        rows = self.tenant.rows(table.column("asset_id").to_numpy())
        keep = self.tenant.evidence_ok[code] & (rows >= 0)
        kept = None if bool(keep.all()) else np.flatnonzero(keep)

        def pick(values: np.ndarray) -> np.ndarray:
            return values if kept is None else values[kept]

        value = table.column("v" if "v" in table.column_names else f"v_{kind}")
        dictionary = None
        if kind == "text":
            encoded = pc.dictionary_encode(value.combine_chunks())
            dictionary = encoded.dictionary
            value = pa.chunked_array([encoded.indices], encoded.indices.type)
        if value.null_count:
            valid = np.asarray(value.is_valid())
            filled = pc.fill_null(value, False if kind == "bool" else 0)
        else:
            valid = np.ones(len(value), dtype=bool)
            filled = value
        facts = _Facts(
            pick(table.column("o").to_numpy()),
            pick(code),
            pick(np.asarray(filled)),
            pick(valid),
            dictionary,
        )
        side = None
        if extra is not None:
            side_column = table.column(extra)
            if side_column.null_count:  # listing times: none for values never listed
                side_column = pc.fill_null(side_column.cast(pa.int64()), _EARLIEST)
            side = pick(np.asarray(side_column))
        counted = None if weights is None else pick(table.column(weights).to_numpy())
        return _Columns(facts, pick(rows), side, self._buckets(facts.observed), counted)

    def _grid(self, columns: _Columns, groups: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Place rows on ``groups`` grids (group in ``columns.extra``) and carry them forward.

        A group's grid has a row only for the assets it has facts of. Returns per
        group: each asset's row in the grid (-1: none), and per grid cell the index
        of the newest fact at or before the cell's step (-1: none).
        """
        facts = columns.facts
        assets, m = self.tenant.assets, len(self.steps)
        group = (
            columns.extra.astype(np.int64)
            if columns.extra is not None and groups > 1
            else np.zeros(len(columns.rows), dtype=np.int64)
        )
        present = np.zeros(groups * assets, dtype=bool)
        key = group * assets + columns.rows
        present[key] = True
        local = np.cumsum(present) - 1
        offsets = np.append(0, np.cumsum(present.reshape(groups, assets).sum(axis=1)))
        size = int(offsets[-1]) * m
        count = len(facts.observed)
        kind = np.int32 if max(size, count) < np.iinfo(np.int32).max else np.int64
        buckets = self._buckets(facts.observed) if columns.buckets is None else columns.buckets
        cell = local[key] * m + buckets
        del key
        # One cell more than the grid, never placed: position -1 reads it (-1).
        winner = np.full(size + 1, _NONE, dtype=kind)
        order = np.arange(count, dtype=kind)
        winner[cell] = order
        lost = winner[cell] != order
        if lost.any():
            members = np.flatnonzero(np.isin(cell, np.unique(cell[lost])))
            ranked = members[
                np.lexsort((facts.evidence[members], facts.observed[members], cell[members]))
            ]
            ranked_cells = cell[ranked]
            last = np.append(ranked_cells[1:] != ranked_cells[:-1], True)
            winner[ranked_cells[last]] = ranked[last]
        # The newest placed cell at or before each step, as a flat position (-1: none).
        position = np.full(size, _NONE, dtype=kind)
        position[cell] = cell
        del cell, order
        rows = position.reshape(size // m if m else 0, m)
        np.maximum.accumulate(rows, axis=1, out=rows)
        index = winner[position]
        placed = []
        for number in range(groups):
            first, last_row = int(offsets[number]), int(offsets[number + 1])
            mine = present[number * assets : (number + 1) * assets]
            row_of = np.where(mine, local[number * assets : (number + 1) * assets] - first, _NONE)
            placed.append((row_of, index[first * m : last_row * m]))
        return placed

    def _buckets(self, observed: np.ndarray) -> np.ndarray:
        """The first step at or after each observation (every one is at or before the last)."""
        if self.uniform:
            ahead: np.ndarray = observed - int(self.steps[0])
            np.maximum(ahead, -1, out=ahead)
            ahead += self.uniform - 1
            ahead //= self.uniform
            return ahead
        found = np.searchsorted(self.steps, observed)
        return found

    def _snapshot_job(self, signal: str, freshness: int, with_kev: bool) -> _Job:
        """Snapshots of the signal's domain: per asset and moment, its count (and KEV listings).

        One pass over the domain's facts: each value of the signal is looked up among
        the CVEs the KEV catalog listed, and facts are counted per asset, moment,
        evidence and listing time. Files whose snapshot file covers the domain (and,
        for KEV, the whole catalog) are read from it instead: the same rows, counted
        and matched when the file was compacted.
        """
        window, upper = self._window(freshness)
        name = snapshots.domain(signal)
        lower, expected = self._since(lambda s: s.startswith(name + "."), freshness)

        def job(lower: int) -> _Job:
            files = self.tenant.files(lower, upper)
            kept = [f for f in files if self.tenant.precomputed(f, name, with_kev=with_kev)]
            # Both give per asset, moment and evidence the count of the signal's facts (v)
            # and, for kev(), per listing time how many of them the catalog listed (m).
            # Made here: it may make the KEV table, on this thread's connection.
            query = self._counted([f for f in files if f not in kept], signal, with_kev, lower)
            listed = self.tenant.kev_times() if with_kev else None
            tenant_id = int(self.tenant.source.tenant_id)

            # Rows of one snapshot are next to each other in a snapshot file, and in no
            # other file unless two files hold facts of the same day.
            together = len(kept) == len(files) and self.tenant.apart(kept)

            def read(cursor: duckdb.DuckDBPyConnection) -> Callable[[], None]:
                table = _fetch(cursor, query)
                if kept:
                    found = _scan_snapshots(
                        self.tenant.footers, kept, tenant_id, signal, listed, (lower, upper)
                    )
                    table = pa.concat_tables([table.cast(found.schema), found])
                columns = self._columns(
                    table,
                    "number",
                    extra="listed" if with_kev else None,
                    weights="m" if with_kev else None,
                )
                moments, owner = _per_moment(
                    columns, self.tenant.evidence_stored, together=together
                )
                kev = _listings(columns, owner, moments) if with_kev else _no_kev()
                return lambda: place(moments, kev, bounded=lower > window)

            return read

        def place(
            moments: _Columns, kev: tuple[np.ndarray, np.ndarray, np.ndarray], *, bounded: bool
        ) -> None:
            index = self._grid(moments, groups=1)
            self.snapshots[signal] = _Latest(moments.facts.readable(), *index[0])
            self.kev[signal] = kev
            if bounded and not self._settled(self.snapshots[signal], expected):
                self._read(job(window))()

        return job(lower)

    def _counted(self, files: Sequence[Path], signal: str, with_kev: bool, lower: int) -> str:
        """Snapshot counts (and KEV listings) from the facts: every value is looked up."""
        quoted = sql_text(signal)
        count = f"count(*) FILTER (WHERE f.signal = {quoted}) AS v"
        join = ""
        if with_kev:
            count += (
                f", k.first_min AS listed, count(*) FILTER (WHERE f.signal = {quoted} "
                f"AND k.first_min IS NOT NULL) AS m"
            )
            join = (
                f" LEFT JOIN {self.tenant.kev_table()} k ON k.key = "
                f"(CASE WHEN f.signal = {quoted} THEN f.value_text END)"
            )
        return (
            f"SELECT {self._placement()}, {count} FROM {_facts_sql(files)} f{join} "
            f"{self._where(lower, int(self.steps[-1]), 'f.')} "
            f"AND {domain_filter('f.signal', signal)} GROUP BY ALL"
        )


def _listings(
    columns: _Columns, owner: np.ndarray, snapshots: _Columns
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per snapshot: where its KEV listing times start, how many, and all the times."""
    assert columns.extra is not None  # noqa: S101 - read with the listing times
    matched = columns.extra != _EARLIEST
    weights = columns.facts.value if columns.weights is None else columns.weights
    counts = weights[matched].astype(np.int64)
    owners = np.repeat(owner[matched], counts)
    order = np.argsort(owners, kind="stable")
    owners = owners[order]
    times = np.repeat(columns.extra[matched], counts)[order]
    snapshot_ids = np.arange(len(snapshots.facts.observed))
    starts = np.searchsorted(owners, snapshot_ids)
    lengths = np.searchsorted(owners, snapshot_ids, side="right") - starts
    return starts, lengths, times


@dataclass(slots=True)
class _Columns:
    """Rows read for the grid: facts, their grid rows, and a side column."""

    facts: _Facts
    rows: np.ndarray
    extra: np.ndarray | None = None
    buckets: np.ndarray | None = None
    #: How many facts each row stands for, where not its value (KEV listings).
    weights: np.ndarray | None = None


def _renumbered(columns: _Columns, codes: list[int], count: int) -> _Columns:
    """Only the rows whose group is one of ``codes``, groups renumbered 0, 1, ..."""
    assert columns.extra is not None  # noqa: S101 - rows carry their group
    number = np.full(count, _NONE, dtype=np.int64)
    number[codes] = np.arange(len(codes))
    groups = number[columns.extra]
    keep = np.flatnonzero(groups >= 0)
    facts = columns.facts
    return _Columns(
        _Facts(
            facts.observed[keep],
            facts.evidence[keep],
            facts.value[keep],
            facts.valid[keep],
            facts.dictionary,
            None if facts.stored is None else facts.stored[keep],
        ),
        columns.rows[keep],
        groups[keep],
        None if columns.buckets is None else columns.buckets[keep],
    )


def _no_kev() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nothing = np.zeros(0, dtype=np.int64)
    return nothing, nothing, nothing


def _per_moment(
    columns: _Columns, evidence_stored: np.ndarray, *, together: bool = False
) -> tuple[_Columns, np.ndarray]:
    """Snapshot rows: per asset and moment, the count, newest evidence and storage
    (``evidence_stored``: when each evidence position was stored).

    Also returns, for each row read, the snapshot it belongs to. Rows are sorted by
    asset and moment first, unless they are in order or ``together`` (the rows of each
    snapshot are next to each other).
    """
    facts = columns.facts
    if not len(facts.observed):
        return columns, np.zeros(0, dtype=np.int64)
    rows, observed = columns.rows, facts.observed
    order = None
    if not together:
        ordered = (rows[1:] > rows[:-1]) | (
            (rows[1:] == rows[:-1]) & (observed[1:] >= observed[:-1])
        )
        order = None if ordered.all() else np.lexsort((observed, rows))

    def sort(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    rows, observed = sort(rows), sort(observed)
    starts = np.append(True, (rows[1:] != rows[:-1]) | (observed[1:] != observed[:-1]))
    start = np.flatnonzero(starts)
    owner = np.cumsum(starts) - 1
    if order is not None:
        owner[order] = owner.copy()
    evidence = sort(facts.evidence)
    snapshots = _Facts(
        observed[start],
        np.maximum.reduceat(evidence, start),
        np.add.reduceat(sort(facts.value), start),
        np.ones(len(start), dtype=bool),
        stored=np.maximum.reduceat(evidence_stored[evidence], start),
    )
    buckets = None if columns.buckets is None else sort(columns.buckets)[start]
    return _Columns(snapshots, rows[start], None, buckets), owner


# -- one control over a chunk of steps --------------------------------------------


class _Pivot:
    """One row per in-scope asset and step of one control: its inputs and cited evidence."""

    def __init__(self, chunk: _Chunk, control: Control, cells: np.ndarray) -> None:
        self.chunk = chunk
        self.control = control
        m = len(chunk.steps)
        self.cells = cells
        self.rows, self.steps = np.divmod(cells, m)
        self.t = chunk.steps[self.steps]
        #: Per freshness, the oldest observation still fresh at each row's step.
        self._oldest: dict[int, np.ndarray] = {}
        self.columns: dict[str, pa.Array] = {STEP_COLUMN: pa.array(self.t, _PLAIN_TIME)}
        self.cited: list[np.ndarray] = []
        #: Per row, when the newest evidence it rests on was stored.
        self.newest_stored = np.full(len(cells), _EARLIEST, dtype=np.int64)
        for signal, features in control.predicate.needs.items():
            if VALUE in features:
                self._value(signal)
            if COUNT in features or KEV in features:
                self._snapshot(signal, with_kev=KEV in features)
            if EVER in features:
                self._ever(signal)

    def _fresh(self, signal: str, latest: _Latest) -> tuple[np.ndarray, np.ndarray]:
        """Per row, whether the newest fact of ``signal`` is fresh, and its index (any,
        where not fresh)."""
        row = latest.row_of[self.rows]
        placed = row >= 0
        if placed.all():
            flat = row * len(self.chunk.steps)
            flat += self.steps
            index = latest.index[flat]
            del flat
        else:
            index = np.full(len(row), _NONE, dtype=latest.index.dtype)
            index[placed] = latest.index[row[placed] * len(self.chunk.steps) + self.steps[placed]]
        facts = latest.facts
        freshness = _freshness(self.control, signal)
        if freshness not in self._oldest:
            self._oldest[freshness] = self.t - freshness
        fresh = facts.observed[index] > self._oldest[freshness]
        fresh &= index >= 0
        cited = facts.evidence[index]
        cited[~fresh] = _NONE
        self.cited.append(cited)
        if facts.stored is None:  # position -1 reads the sentinel: never stored
            stored = self.chunk.tenant.evidence_stored[cited]
        else:
            stored = np.where(fresh, facts.stored[index], _EARLIEST)
        np.maximum(self.newest_stored, stored, out=self.newest_stored)
        return fresh, index

    def _value(self, signal: str) -> None:
        latest = self.chunk.values[signal]
        fresh, index = self._fresh(signal, latest)
        facts = latest.facts
        missing = ~(fresh & facts.valid[index])
        self.columns[column(signal)] = _typed(
            facts.value[index], missing, self.chunk.types[signal], facts.dictionary
        )

    def _snapshot(self, signal: str, *, with_kev: bool) -> None:
        latest = self.chunk.snapshots[signal]
        fresh, index = self._fresh(signal, latest)
        counts = latest.facts.value[index].astype(np.int64)
        self.columns[column(signal, COUNT)] = pa.array(counts, pa.int64(), mask=~fresh)
        if not with_kev:
            return
        starts, lengths, times = self.chunk.kev[signal]
        if len(times):
            safe = np.where(fresh, index, 0)
            length = np.where(fresh, lengths[safe], 0)
            start = starts[safe]
        else:
            length = np.zeros(len(index), dtype=np.int64)
            start = length
        offsets = np.zeros(len(index) + 1, dtype=np.int32)
        np.cumsum(length, out=offsets[1:])
        flat = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
        self.columns[column(signal, KEV)] = pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()),
            pa.array(times[flat] if len(times) else np.zeros(0, np.int64), _PLAIN_TIME),
            mask=pa.array(~fresh),
        )

    def _ever(self, signal: str) -> None:
        firsts, tenant_first = self.chunk.tenant.firsts(signal)
        mine = firsts[self.rows] <= self.t
        anyone = self.t >= tenant_first
        self.columns[column(signal, EVER)] = pa.array(mine, pa.bool_(), mask=~(mine | anyone))

    def verdicts(self, connection: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, np.ndarray]:
        """The predicate per row: (true, known)."""
        with connection.cursor() as cursor:
            cursor.register("grid_pivot", pa.table(self.columns))
            sql = f"SELECT ({compile_sql(self.control.predicate)}) AS r FROM grid_pivot"
            result = _fetch(cursor, sql).column("r")
        known = np.asarray(result.is_valid())
        true = np.asarray(pc.fill_null(result, False)) & known
        return true, known


def _freshness(control: Control, signal: str) -> int:
    """How long a fact of ``signal`` stays fresh for ``control``, in microseconds."""
    return int(control.spec.freshness_of(signal).total_seconds() * 1_000_000)


def _typed(
    values: np.ndarray, missing: np.ndarray, kind: str, dictionary: pa.Array | None
) -> pa.Array:
    if kind == "bool":
        return pa.array(values.astype(bool, copy=False), pa.bool_(), mask=missing)
    if kind == "number":
        return pa.array(values.astype(np.float64, copy=False), pa.float64(), mask=missing)
    if kind == "time":
        return pa.array(values.astype(np.int64, copy=False), _PLAIN_TIME, mask=missing)
    indices = pa.array(values.astype(np.int32, copy=False), pa.int32(), mask=missing)
    # Plain strings, so that two text signals with their own dictionaries compare.
    return pc.take(dictionary if dictionary is not None else pa.array([], pa.string()), indices)


def _scope(chunk: _Chunk, control: Control) -> np.ndarray:
    """Flat indices of the in-scope cells: kind, existence at the step, tags."""
    tenant, spec = chunk.tenant, control.spec
    codes = [tenant.kind_names.index(k) for k in spec.scope.kinds if k in tenant.kind_names]
    eligible = np.isin(tenant.asset_kinds, codes)
    if spec.scope.tags:
        tags = first_of(tenant.summary, TAG_SIGNAL)
        tags = tags.filter(pc.is_in(tags.column("key"), pa.array(spec.scope.tags)))
        rows = tenant.rows(tags.column("asset_id").to_numpy())
        tagged = np.zeros(tenant.assets, dtype=bool)
        tagged[rows[rows >= 0]] = True
        eligible &= tagged
    retire = int(spec.retire_delta.total_seconds() * 1_000_000)
    t = chunk.steps[None, :]
    alive = (tenant.first[:, None] <= t) & (t < tenant.last[:, None] + retire)
    return np.flatnonzero((alive & eligible[:, None]).ravel())


def _excepted(pivot: _Pivot, exceptions: Sequence[ExceptionWindow], tenant: _Tenant) -> np.ndarray:
    excepted = np.zeros(len(pivot.cells), dtype=bool)
    for item in exceptions:
        if item.control_id != pivot.control.id:
            continue
        active = (pivot.t >= _us(item.starts_at)) & (pivot.t < _us(item.expires_at))
        if item.asset_id is not None:
            row = int(tenant.rows(np.array([item.asset_id], dtype=np.int64))[0])
            if row < 0:
                continue
            active &= pivot.rows == row
        excepted |= active
    return excepted


def _cited(pivot: _Pivot, tenant: _Tenant, m: int) -> list[set[int]]:
    """Per step, the distinct evidence cited by any in-scope asset."""
    found: list[set[int]] = [set() for _ in range(m)]
    known = tenant.evidence_ids
    if m * len(known) <= 64_000_000:
        matrix = np.zeros((m, len(known)), dtype=bool)
        for codes in pivot.cited:
            cited = codes >= 0
            matrix[pivot.steps[cited], codes[cited]] = True
        step_index, code = np.nonzero(matrix)
    else:
        pairs = np.unique(
            np.concatenate(
                [pivot.steps[c >= 0] * len(known) + c[c >= 0] for c in pivot.cited]
                or [np.zeros(0, dtype=np.int64)]
            )
        )
        step_index, code = pairs // len(known), pairs % len(known)
    for step, evidence in zip(step_index.tolist(), known[code].tolist(), strict=True):
        found[step].add(evidence)
    return found


def _evaluate_control(
    chunk: _Chunk, control: Control, moments: Sequence[datetime]
) -> list[StepResult]:
    tenant, m = chunk.tenant, len(chunk.steps)
    cells = _scope(chunk, control)
    if not len(cells):
        return [combine(control, moment, [], set()) for moment in moments]
    pivot = _Pivot(chunk, control, cells)
    true, known = pivot.verdicts(tenant.connection)
    excepted = _excepted(pivot, tenant.source.exceptions, tenant)
    kinds = len(tenant.kind_names)
    # One count per step, kind, outcome (0 excepted, 1 passing, 2 failing, 3 unverified)
    # and whether the row rests on evidence stored after the step.
    outcome = np.full(len(true), 3, dtype=np.int8)
    outcome -= known
    outcome -= true
    outcome[excepted] = 0
    backfilled = pivot.newest_stored > pivot.t
    backfilled &= ~excepted
    key = pivot.steps * (kinds * 8)
    key += tenant.asset_kinds[pivot.rows] * 8
    key += outcome * 2
    key += backfilled
    tallied = np.bincount(key, minlength=m * kinds * 8).reshape(m, kinds, 4, 2)
    in_scope = tallied.sum(axis=(2, 3)).tolist()
    counts = {
        "excepted": tallied[:, :, 0].sum(axis=2).tolist(),
        "passing": tallied[:, :, 1].sum(axis=2).tolist(),
        "failing": tallied[:, :, 2].sum(axis=2).tolist(),
        "unverified": tallied[:, :, 3].sum(axis=2).tolist(),
        "backfilled": tallied[:, :, 1:, 1].sum(axis=2).tolist(),
    }
    cited = _cited(pivot, tenant, m)
    results = []
    for step, moment in enumerate(moments):
        per_kind = [
            KindCounts(
                kind=name,
                in_scope=in_scope[step][code],
                passing=counts["passing"][step][code],
                failing=counts["failing"][step][code],
                unverified=counts["unverified"][step][code],
                excepted=counts["excepted"][step][code],
                backfilled=counts["backfilled"][step][code],
            )
            for code, name in enumerate(tenant.kind_names)
            if in_scope[step][code]
        ]
        results.append(combine(control, moment, per_kind, cited[step]))
    return results


def evaluate(
    source: FactSource,
    *,
    controls: Sequence[Control],
    steps: Sequence[datetime],
    types: dict[str, str],
) -> dict[str, list[StepResult]]:
    """Every control at every step (sorted, distinct), from one read of the facts."""
    moments = sorted(set(steps))
    results: dict[str, list[StepResult]] = {c.id: [] for c in controls}
    if not moments or not controls:
        return results
    instants = np.array([_us(s) for s in moments], dtype=np.int64)
    with array_work(), connect_duckdb() as connection:
        connection.register("no_facts_arrow", FACT_SCHEMA.empty_table())
        # Plain tables, not temporary ones: the cursor that reads ahead sees them too.
        connection.execute(f"CREATE TABLE {_NO_FACTS} AS SELECT * FROM no_facts_arrow")
        tenant = _Tenant(connection, source)
        needs = _Needs.of(controls)
        size = max(1, MAX_CELLS // max(1, tenant.assets))
        # Two controls at a time: most of their work is NumPy and DuckDB, which
        # release the interpreter, so both cores are used.
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for start in range(0, len(moments), size):
                    chunk = _Chunk(tenant, instants[start : start + size], needs, types)
                    span = moments[start : start + size]
                    evaluated = _evaluate_chunk(pool, chunk, controls, span)
                    for control, found in zip(controls, evaluated, strict=True):
                        results[control.id].extend(found)
        finally:
            tenant.footers.close()
    return results


def _evaluate_chunk(
    pool: ThreadPoolExecutor,
    chunk: _Chunk,
    controls: Sequence[Control],
    moments: Sequence[datetime],
) -> list[list[StepResult]]:
    """Each control over a chunk, started as soon as the signals it reads are placed,
    so that controls are evaluated while the remaining signals are read."""
    started: dict[str, Future[list[StepResult]]] = {}

    def begin() -> None:
        for control in controls:
            if control.id not in started and chunk.ready(control):
                started[control.id] = pool.submit(_evaluate_control, chunk, control, moments)

    chunk.load(placed=begin)
    begin()
    return [started[control.id].result() for control in controls]
