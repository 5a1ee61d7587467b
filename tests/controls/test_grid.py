"""The grid engine gives exactly the per-control SQL's results, on random tenants.

The SQL of :mod:`claimready.controls.timeline` (ASOF joins per control and
signal) is the reference: both engines read the same Parquet fact files and
must agree on every count, status, citation and backfill flag, with and
without a stored-before cut, with exceptions and tag scopes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.controls import grid, timeline
from claimready.controls.pack import Control, ControlSpec, build_control
from claimready.errors import StorageError
from claimready.facts import snapshots
from claimready.facts.snapshots import write_snapshots
from claimready.facts.store import COMPACT_ORDER, FactRow, connect_duckdb, write_facts

TYPES = {
    "a.flag": "bool",
    "a.num": "number",
    "a.text": "text",
    "a.time": "time",
    "v.cve": "text",
    "v.critical": "number",
    "kev.listed": "text",
    "asset.tag": "text",
}
START = datetime(2026, 5, 1, tzinfo=UTC)
KINDS = {1: "user", 2: "user", 3: "server", 4: "server", 5: "organization", 6: "user"}
CVES = ("CVE-1", "CVE-2", "CVE-3")
CVES_LISTED = (("CVE-1", 2), ("CVE-2", 20))


def _control(cid: str, predicate: str, **changes: Any) -> Control:
    spec = {
        "id": cid,
        "title": cid,
        "objective": cid,
        "scope": {"kinds": ["user", "server"]},
        "signals": sorted({s for s in TYPES if s in predicate}) or ["a.flag"],
        "predicate": predicate,
        "threshold": {"coverage": 0.5},
        "freshness": "30h",
        "severity": "high",
        "responsible": ["protect"],
        "retire_after": "2d",
        **changes,
    }
    return build_control(ControlSpec.model_validate(spec), types=TYPES, where="test", pack="test")


CONTROLS = [
    # A signal fresh for longer, or for less, than the control's other signals.
    _control("flags", "a.flag and a.num >= 2", signal_freshness={"a.num": "3d"}),
    _control("texts", "a.text in ('x', 'y') or not present(a.num)", freshness="2d"),
    _control(
        "ages",
        "age(a.time) <= hours(20)",
        threshold={"max_failing": 1},
        signal_freshness={"a.time": "50h"},
    ),
    _control("evers", "ever(a.flag) and a.num != 3", step="hour", freshness="6h"),
    _control("counts", "count(v.cve) <= 1 and v.critical == 0", scope={"kinds": ["server"]}),
    _control("kevs", "kev(v.cve, days(1)) == 0", threshold={"coverage": 1.0, "kinds": {}}),
    _control("tagged", "a.flag", scope={"kinds": ["user", "server"], "tags": ["prod"]}),
    _control("org", "a.num > 0", scope={"kinds": ["organization"]}, freshness="3d"),
    _control(
        "fresh-counts",
        "count(v.cve) <= 1 and v.critical == 0 and kev(v.cve, hours(6)) == 0",
        scope={"kinds": ["server"]},
        signal_freshness={"v.cve": "3d", "v.critical": "10h"},
    ),
]

values = {
    "a.flag": st.booleans(),
    "a.num": st.integers(0, 4).map(float),
    "a.text": st.sampled_from(["x", "y", "z"]),
    "a.time": st.integers(0, 72).map(lambda h: START + timedelta(hours=h)),
    "v.cve": st.sampled_from(CVES),
    "v.critical": st.integers(0, 1).map(float),
    "kev.listed": st.sampled_from(CVES),
    "asset.tag": st.sampled_from(["prod", "test"]),
}
facts = st.lists(
    st.sampled_from(sorted(TYPES)).flatmap(
        lambda signal: st.tuples(
            st.sampled_from(sorted(KINDS)),
            st.just(signal),
            values[signal],
            st.integers(0, 10 * 24 * 2).map(lambda m: START + timedelta(minutes=30 * m)),
            st.integers(1, 6),
        )
    ),
    max_size=80,
)
stored = st.lists(st.integers(0, 100), min_size=6, max_size=6)
# Vulnerability scans of one day from one piece of evidence (so in one file): CVEs of an
# asset at one moment (one, or several: a multi-valued domain), with or without a count
# of critical findings at the same moment.
scans = st.tuples(
    st.integers(0, 9),
    st.integers(1, 6),
    st.lists(
        st.tuples(
            st.sampled_from(sorted(KINDS)),
            st.integers(0, 47),
            st.lists(st.sampled_from(CVES), min_size=1, max_size=3),
            st.booleans(),
        ),
        max_size=5,
    ),
).map(
    lambda day: [
        row
        for asset, half_hours, cves, critical in day[2]
        for moment in [START + timedelta(days=day[0], minutes=30 * half_hours)]
        for row in [(asset, "v.cve", cve, moment, day[1]) for cve in cves]
        + ([(asset, "v.critical", 0.0, moment, day[1])] if critical else [])
    ]
)
# Snapshot files as compaction writes them, with the CVEs looked up then (None: no files).
looked_up = st.none() | st.sets(st.sampled_from(CVES)).map(sorted)


def _source(
    tmp_path: Path,
    rows: list[tuple[int, str, Any, datetime, int]],
    stored_hours: list[int],
    stored_before: datetime | None,
    exceptions: list[timeline.ExceptionWindow],
    precounted: list[str] | None = None,
    row_group_rows: int | None = None,
) -> timeline.FactSource:
    files: list[tuple[Any, Path]] = []
    by_evidence: dict[int, list[FactRow]] = {}
    seen: set[tuple[int, str, datetime, int]] = set()
    for asset, signal, value, observed, evidence in rows:
        key = (asset, signal, observed, evidence)
        # Two values of one single-valued signal at one moment in one piece of evidence
        # have no defined order in either engine.
        if signal not in ("v.cve", "kev.listed", "asset.tag") and key in seen:
            continue
        seen.add(key)
        by_evidence.setdefault(evidence, []).append(FactRow(asset, signal, value, observed))
    facts_dir = tmp_path / "facts"
    for evidence, written in sorted(by_evidence.items()):
        for item in write_facts(
            facts_dir=facts_dir, tenant_id=1, evidence_id=evidence, ledger_index=None, rows=written
        ):
            files.append((item.day, facts_dir / item.path))
    files.sort(key=lambda f: (f[0], str(f[1])))
    if row_group_rows is not None:
        # As compaction writes them (sorted by signal), in row groups of a few rows:
        # most hold one signal, known from their statistics alone.
        for _, path in files:
            table = pq.read_table(path).sort_by(list(COMPACT_ORDER))
            pq.write_table(table, path, row_group_size=row_group_rows)
    if precounted is not None:
        with connect_duckdb() as connection:
            for _, path in files:
                write_snapshots(connection, fact_file=path, kev=precounted)
    return timeline.FactSource(
        files=[path for _, path in files],
        days=[(day, day) for day, _ in files],
        tenant_id=1,
        asset_kinds=KINDS,
        stored_at={e: START + timedelta(hours=h) for e, h in enumerate(stored_hours, start=1)},
        stored_before=stored_before,
        exceptions=exceptions,
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=facts,
    scanned=scans,
    stored_hours=stored,
    cut=st.none() | st.integers(0, 100).map(lambda h: START + timedelta(hours=h)),
    excepted=st.booleans(),
    odd=st.integers(0, 23),
    precounted=looked_up,
    row_group_rows=st.none() | st.integers(1, 4),
)
def test_grid_equals_per_control_sql(
    tmp_path_factory: Any,
    rows: list[tuple[int, str, Any, datetime, int]],
    scanned: list[tuple[int, str, Any, datetime, int]],
    stored_hours: list[int],
    cut: datetime | None,
    excepted: bool,
    odd: int,
    precounted: list[str] | None,
    row_group_rows: int | None,
) -> None:
    tmp_path = tmp_path_factory.mktemp("grid")
    exceptions = (
        [
            timeline.ExceptionWindow(
                "flags", 3, START + timedelta(days=1), START + timedelta(days=2)
            ),
            timeline.ExceptionWindow("counts", None, START, START + timedelta(hours=40)),
        ]
        if excepted
        else []
    )
    source = _source(
        tmp_path, rows + scanned, stored_hours, cut, exceptions, precounted, row_group_rows
    )
    # Ten days of steps read each value type on its own; two days read them together.
    # A moment late on the last day of facts (one step, or a few) is often after every
    # asset's last observation: the grid then reads only back to those.
    late = START + timedelta(days=9, hours=odd, minutes=7)
    for days, start in ((10, START), (2, START), (0, late), (1, late)):
        for control in CONTROLS:
            steps = sorted(
                {
                    *timeline.step_series(
                        start, start + timedelta(days=days), control.spec.step_delta
                    ),
                    start + timedelta(days=min(days, 1), hours=odd, minutes=7),
                }
            )
            with timeline.connect(source) as connection:
                expected = timeline.evaluate_steps(
                    connection, control=control, steps=steps, types=TYPES
                )
            found = grid.evaluate(source, controls=[control], steps=steps, types=TYPES)
            assert found[control.id] == expected, (days, control.id)


def test_grid_evaluates_controls_together_as_alone(tmp_path: Path) -> None:
    rows = [
        (asset, signal, True if TYPES[signal] == "bool" else 2.0, START + timedelta(hours=h), 1)
        for asset in KINDS
        for signal in ("a.flag", "a.num")
        for h in (3, 30, 60)
    ]
    source = _source(tmp_path, rows, [1, 2, 3, 4, 5, 6], None, [])
    steps = timeline.step_series(START, START + timedelta(days=4), timedelta(days=1))
    together = grid.evaluate(source, controls=CONTROLS, steps=steps, types=TYPES)
    for control in CONTROLS:
        alone = grid.evaluate(source, controls=[control], steps=steps, types=TYPES)
        assert together[control.id] == alone[control.id]
    assert [s.status for s in together["flags"]] == [
        "unverified",
        "pass",
        "pass",
        "pass",
        "unverified",
    ]


def test_the_newest_fact_of_evidence_not_counted_is_read_past(tmp_path: Path) -> None:
    # Evidence 6 is not the tenant's: its facts are in the summary but never decide.
    rows = [
        (asset, signal, value, START + timedelta(hours=h), evidence)
        for asset in (1, 3)
        for signal, value in (("a.flag", True), ("a.num", 2.0), ("v.cve", "CVE-1"))
        for h, evidence in ((2, 1), (20, 2), (30, 6))
    ]
    source = _source(tmp_path, rows, [1, 2, 3, 4, 5], None, [])
    for at in (START + timedelta(hours=h) for h in (31, 40, 49)):
        for control in (CONTROLS[0], CONTROLS[4]):
            with timeline.connect(source) as connection:
                expected = timeline.evaluate_steps(
                    connection, control=control, steps=[at], types=TYPES
                )
            found = grid.evaluate(source, controls=[control], steps=[at], types=TYPES)
            assert found[control.id] == expected, (at, control.id)
    at = START + timedelta(hours=40)
    found = grid.evaluate(source, controls=[CONTROLS[0]], steps=[at], types=TYPES)
    assert found["flags"][0].passing == 2  # from evidence 2, observed 20 hours before


@pytest.mark.parametrize("precounted", [None, ["CVE-1", "CVE-2"], ["CVE-2"]])
def test_snapshot_files_stand_for_the_facts(tmp_path: Path, precounted: list[str] | None) -> None:
    rows: list[tuple[int, str, Any, datetime, int]] = [
        (asset, "v.cve", cve, START + timedelta(hours=h), evidence)
        for asset in (3, 4)
        for h, evidence in ((5, 1), (29, 2), (53, 2))
        for cve in ("CVE-1", "CVE-2", "CVE-2", "CVE-3")[: max(1, asset - h // 20)]
    ]
    rows += [(3, "v.critical", 0.0, START + timedelta(hours=h), 2) for h in (5, 29, 53)]
    rows += [(5, "kev.listed", cve, START + timedelta(hours=h), 3) for cve, h in CVES_LISTED]
    source = _source(tmp_path, rows, [1, 2, 3, 4, 5, 6], None, [], precounted)
    if precounted is not None:
        assert [c.domains if c else None for c in map(snapshots.covered, source.files)] == [
            frozenset({"v"}),
            None,  # one fact per asset and moment
            None,  # the KEV catalog's own domain is never kept
            frozenset({"v"}),
            frozenset({"v"}),
        ]
    steps = timeline.step_series(START, START + timedelta(days=3), timedelta(hours=6))
    _same_as_reference(source, [CONTROLS[4], CONTROLS[5]], steps)
    kevs = grid.evaluate(source, controls=[CONTROLS[5]], steps=steps, types=TYPES)["kevs"]
    assert [s.failing for s in kevs] == [0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2]
    counts = grid.evaluate(source, controls=[CONTROLS[4]], steps=steps, types=TYPES)["counts"]
    # One CVE and no critical finding passes: the count is of the signal's own facts.
    assert [s.passing for s in counts] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def _same_as_reference(source: Any, controls: list[Any], steps: Any) -> None:
    """Each control's steps from the grid engine equal the reference SQL engine's."""
    for control in controls:
        with timeline.connect(source) as connection:
            expected = timeline.evaluate_steps(
                connection, control=control, steps=steps, types=TYPES
            )
        found = grid.evaluate(source, controls=[control], steps=steps, types=TYPES)
        assert found[control.id] == expected, control.id


@pytest.mark.parametrize("late", [False, True])
def test_snapshot_files_of_separate_days_are_read_without_sorting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: bool
) -> None:
    # One file a day (one piece of evidence each), every one with its snapshot file.
    rows: list[tuple[int, str, Any, datetime, int]] = [
        (asset, "v.cve", cve, START + timedelta(days=day, hours=hour), day + 1)
        for day in range(4)
        for asset in (3, 4)
        for hour in (2, 9)
        for cve in CVES[: 1 + (asset + day + hour) % 3]
    ]
    rows += [
        (3, "v.critical", 1.0, START + timedelta(days=day, hours=9), day + 1) for day in (1, 2)
    ]
    rows += [(5, "kev.listed", cve, START + timedelta(hours=h), 1) for cve, h in CVES_LISTED]
    if late:  # more of one snapshot, from later evidence: a second file of that day
        rows += [(3, "v.cve", cve, START + timedelta(days=1, hours=9), 6) for cve in CVES[:2]]
    source = _source(tmp_path, rows, [1, 2, 3, 4, 5, 6], None, [], ["CVE-1", "CVE-2"])
    seen: list[bool] = []
    per_moment = grid._per_moment

    def recording(columns: Any, stored: Any, *, together: bool = False) -> Any:
        seen.append(together)
        return per_moment(columns, stored, together=together)

    monkeypatch.setattr(grid, "_per_moment", recording)
    steps = timeline.step_series(START, START + timedelta(days=4), timedelta(hours=4))
    _same_as_reference(source, [CONTROLS[4], CONTROLS[5]], steps)
    assert seen == [not late, not late]


def test_a_damaged_fact_file_is_named(tmp_path: Path) -> None:
    rows = [(1, "a.flag", True, START + timedelta(hours=3), 1)]
    source = _source(tmp_path, rows, [1, 2, 3, 4, 5, 6], None, [])
    damaged = source.files[0]
    damaged.write_bytes(b"not parquet")
    steps = timeline.step_series(START, START + timedelta(days=2), timedelta(days=1))
    with pytest.raises(StorageError, match=f"cannot read the stored facts: .*{damaged.name}"):
        grid.evaluate(source, controls=CONTROLS[:1], steps=steps, types=TYPES)


def test_a_file_replaced_during_an_evaluation_is_read_as_it_was_opened(tmp_path: Path) -> None:
    # Ingest rewrites a snapshot file when the KEV catalog grows; an evaluation that
    # has read its footer must go on reading the file that footer describes.
    rows = [(1, "a.flag", True, START + timedelta(hours=3), 1)]
    (path,) = _source(tmp_path, rows, [1, 2, 3, 4, 5, 6], None, []).files
    footers = grid._Footers()
    footer = footers(path)
    before = footer.read(list(range(footer.metadata.num_row_groups)), ["signal"], [])
    replacement = pq.read_table(path).slice(0, 0)
    pq.write_table(replacement, path.with_name("new.parquet"))
    path.with_name("new.parquet").replace(path)
    after = footer.read(list(range(footer.metadata.num_row_groups)), ["signal"], [])
    assert after.to_pylist() == before.to_pylist() == [{"signal": "a.flag"}]
    assert footers(path) is footer  # opened once per evaluation
    footers.close()
    assert footer.handle.closed
