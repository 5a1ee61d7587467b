"""Evaluation over time on a stored tenant: gaps, stored-before, exceptions, tuning, incremental."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from claimready.app import App
from claimready.controls.models import EvaluationRun
from claimready.controls.service import EvaluateRequest, add_exception, evaluate, tune
from claimready.db.engine import transaction
from claimready.demo.generate import FleetFaults, defender_machines
from claimready.evidence.service import ingest_file
from claimready.ledger.records import decode_record
from claimready.tenants.models import Tenant
from tests.conftest import Run

START = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _ingest_days(app: App, tmp_path: Path, days: list[int], *, inactive: set[int]) -> None:
    for day in days:
        moment = START + day * DAY + timedelta(hours=6)
        document = defender_machines(
            count=20,
            now=moment,
            seed=5,
            faults=FleetFaults(inactive=1 if day in inactive else 0),
            domain="acme.example",
            max_lag_minutes=30,
        )
        path = tmp_path / f"m{day}.json"
        path.write_text(json.dumps(document))
        ingest_file(app=app, tenant_slug="acme", path=path)


def _edr(app: App, **changes: object) -> list[tuple[str, datetime, datetime]]:
    request = EvaluateRequest(
        tenant_slug="acme",
        as_of=START + 10 * DAY,
        window=10 * DAY,
        **changes,  # type: ignore[arg-type]
    )
    result = evaluate(app=app, request=request)
    edr = next(c for c in result.controls if c.control.id == "edr-coverage")
    return [(g.status, g.start, g.end) for g in edr.gaps]


def _runs(app: App) -> int:
    with transaction(app.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(EvaluationRun)) or 0)


def test_gaps_have_exact_bounds_and_runs_are_incremental(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant()
    _ingest_days(app, tmp_path, [0, 1, 2, 5, 6, 7, 8, 9], inactive={7})
    gaps = _edr(app)
    assert gaps == [
        ("unverified", START, START + DAY),
        ("unverified", START + 4 * DAY, START + 6 * DAY),
        ("fail", START + 8 * DAY, START + 9 * DAY),
    ]
    # The same question again re-evaluates nothing; a backfill re-evaluates from its day.
    runs = _runs(app)
    again = evaluate(app=app, request=EvaluateRequest("acme", START + 10 * DAY, 10 * DAY))
    assert again.recomputed_from is not None and again.recomputed_from > START + 10 * DAY
    # Every step asked for, the moment itself included, came from the stored results.
    assert _runs(app) == runs
    edr = next(c for c in again.controls if c.control.id == "edr-coverage")
    assert edr.at.status == "pass" and edr.at.at == START + 10 * DAY
    _ingest_days(app, tmp_path, [3, 4], inactive=set())
    assert _edr(app) == [
        ("unverified", START, START + DAY),
        ("fail", START + 8 * DAY, START + 9 * DAY),
    ]


def test_stored_before_sees_only_evidence_the_ledger_held(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant()
    _ingest_days(app, tmp_path, [0, 1], inactive=set())
    result = evaluate(app=app, request=EvaluateRequest("acme", START + 2 * DAY, 2 * DAY))
    edr = next(c for c in result.controls if c.control.id == "edr-coverage")
    # Imported today about March: every step rests on backfilled evidence.
    assert edr.steps[-1].status == "pass"
    assert not edr.steps[-1].provable and edr.steps[-1].backfilled == 20
    before = evaluate(
        app=app,
        request=EvaluateRequest("acme", START + 2 * DAY, 2 * DAY, stored_before=START),
    )
    edr_before = next(c for c in before.controls if c.control.id == "edr-coverage")
    assert {s.status for s in edr_before.steps} == {"unverified"}
    assert edr_before.steps[-1].in_scope == 0


def test_exceptions_show_as_excepted_and_expire(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant()
    _ingest_days(app, tmp_path, list(range(10)), inactive={2, 3, 4, 5})
    assert _edr(app)[1:] == [("fail", START + 3 * DAY, START + 7 * DAY)]
    row = add_exception(
        app=app,
        tenant_slug="acme",
        control_id="edr-coverage",
        asset_id=None,
        reason="sensor replacement",
        compensating_control="network isolation",
        approved_by="insurer panel firm",
        starts_at=START,
        expires_at=START + 5 * DAY,
        actor="tester",
    )
    assert row.ledger_index is not None
    result = evaluate(app=app, request=EvaluateRequest("acme", START + 10 * DAY, 10 * DAY))
    edr = next(c for c in result.controls if c.control.id == "edr-coverage")
    by_day = {s.at: s for s in edr.steps}
    assert by_day[START + 3 * DAY].excepted == 20 and by_day[START + 3 * DAY].passing == 0
    assert by_day[START + 3 * DAY].status == "unverified"  # nothing left to judge: never a pass
    assert by_day[START + 5 * DAY].status == "fail"  # the exception expired
    with app.open_ledger("acme") as ledger:
        record = decode_record(ledger.entry(row.ledger_index))
    assert record["subject"]["kind"] == "control-exception"


def test_tuning_is_recorded_with_its_actor(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    make_tenant()
    _ingest_days(app, tmp_path, list(range(10)), inactive={7})
    tune(
        app=app,
        tenant_slug="acme",
        control_id="edr-coverage",
        field="threshold",
        value={"coverage": 0.9},
        actor="alice@example",
    )
    assert _edr(app) == [("unverified", START, START + DAY)]
    with app.open_ledger("acme") as ledger:
        entries = [decode_record(ledger.entry(i)) for i in range(ledger.size)]
    tuned = [e for e in entries if e.get("subject", {}).get("kind") == "control-tuning"]
    assert tuned and tuned[0]["actor"] == "alice@example"
    days = [e for e in entries if e.get("subject", {}).get("kind") == "control-evaluation"]
    assert days and all("results_sha256" in e["details"] for e in days)


def test_cli_evaluate_gaps_and_controls(run: Run, tmp_path: Path) -> None:
    assert run("init", "--json")[0] == 0
    assert run("tenant", "add", "acme")[0] == 0
    code, out, _ = run("controls", "list", "--tenant", "acme", "--json")
    listed = {c["id"]: c for c in json.loads(out)}
    assert code == 0 and len(listed) >= 20
    assert listed["mfa-remote-access"]["signal_freshness"] == {"signin.single_factor": "31d"}
    code, out, _ = run("controls", "list", "--tenant", "acme")
    assert code == 0 and "31d)" in out  # no control's own freshness is 31 days
    code, out, _ = run("evaluate", "--tenant", "acme", "--as-of", "2026-05-14T03:00Z", "--json")
    assert code == 0
    data = json.loads(out)
    assert {c["at"]["status"] for c in data["controls"]} == {"unverified"}
    code, out, _ = run(
        "gaps", "--tenant", "acme", "--window", "2d", "--as-of", "2026-05-14T03:00Z", "--json"
    )
    assert code == 0 and json.loads(out)["gaps"]
    code, _, err = run("evaluate", "--tenant", "acme", "--window", "soon")
    assert code == 2 and "--window" in err
    code, out, _ = run("controls", "show", "edr-coverage", "--tenant", "acme", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["assets"] == []
    csf = [f for f in shown["frameworks"] if f["framework"] == "nist-csf-2.0"]
    assert [f["id"] for f in csf] == ["DE.CM-09"]
    assert csf[0]["text"].startswith("Computing hardware and software, runtime environments")
    code, out, _ = run("controls", "show", "edr-coverage", "--tenant", "acme")
    assert code == 0
    assert "nist-csf-2.0 DE.CM-09: Computing hardware and software, runtime" in out
