"""Evaluate a tenant's controls over a window, incrementally, and keep the results.

Results are stored one row per control and step (:class:`ControlStep`). A run
records the digest of the controls it used (pack, tuning and exceptions) and
the newest evidence it saw; the next run with the same digest re-evaluates
only the steps new evidence can affect (from its earliest observed time less
the longest ``retire_after``), and steps of the window never evaluated.
Each UTC day whose steps were (re)computed is entered in the tenant's ledger
as a ``result.derived`` record carrying the day's statuses and the SHA-256 of
its step results.

``stored_before`` evaluations use only evidence the ledger held before that
moment; they are computed on demand and never stored.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from claimready.app import App
from claimready.arraywork import array_work
from claimready.assets.models import Asset
from claimready.canonical import canonical_json
from claimready.controls import grid, timeline
from claimready.controls.gaps import Continuity, Gap, continuity, find_gaps
from claimready.controls.models import (
    ControlException,
    ControlStep,
    ControlTuning,
    EvaluationRun,
)
from claimready.controls.pack import Control, ControlSpec, baseline, build_control, signal_types
from claimready.db.engine import transaction
from claimready.errors import InputError, NotFoundError
from claimready.evidence.models import Evidence
from claimready.facts.store import fact_files, tenant_folder
from claimready.ledger.records import encode_record, generic_record
from claimready.tenants import service as tenants
from claimready.tenants.models import Tenant
from claimready.timeutil import format_utc, utcnow

TUNABLE = ("threshold", "freshness")
DEFAULT_WINDOW = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class ControlTimeline:
    """One control over a window: its steps, continuity, gaps and state at the moment asked."""

    control: Control
    steps: list[timeline.StepResult]
    at: timeline.StepResult
    continuity: Continuity
    gaps: list[Gap]


@dataclass(frozen=True, slots=True)
class WindowEvaluation:
    """Every control of a tenant as of a moment and over the window before it."""

    tenant: str
    as_of: datetime
    window_start: datetime
    stored_before: datetime | None
    recomputed_from: datetime | None
    controls: list[ControlTimeline] = field(default_factory=list)


# --- controls, tuning and exceptions ----------------------------------------


def _tuned(spec: ControlSpec, overrides: dict[str, Any]) -> ControlSpec:
    data = spec.model_dump()
    data.update(overrides)
    return ControlSpec.model_validate(data)


def get_controls(*, session: Session, tenant_id: int) -> dict[str, Control]:
    """The baseline pack's controls with the tenant's tuning applied."""
    pack = baseline()
    rows = session.scalars(
        select(ControlTuning).where(ControlTuning.tenant_id == tenant_id).order_by(ControlTuning.id)
    )
    overrides: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        overrides[row.control_id][row.field] = row.value
    if not overrides:
        return dict(pack.controls)
    types = signal_types()
    return {
        cid: build_control(_tuned(c.spec, overrides[cid]), types=types, where="tuning", pack=c.pack)
        if cid in overrides
        else c
        for cid, c in pack.controls.items()
    }


def get_control_or_raise(*, session: Session, tenant_id: int, control_id: str) -> Control:
    """One control of the tenant; NotFoundError naming the known ids otherwise."""
    controls = get_controls(session=session, tenant_id=tenant_id)
    if control_id not in controls:
        raise NotFoundError(f"no control {control_id!r} (known: {', '.join(sorted(controls))})")
    return controls[control_id]


def _append(app: App, tenant: str, records: Sequence[dict[str, Any]]) -> int | None:
    if not records:
        return None
    with app.open_ledger(tenant) as ledger:
        indexes = ledger.append_many([encode_record(r) for r in records])
        ledger.wait_for(indexes[-1])
    return indexes[-1]


def tune(
    *, app: App, tenant_slug: str, control_id: str, field: str, value: Any, actor: str
) -> ControlTuning:
    """Change a control's threshold or freshness for one tenant, entered in the ledger."""
    if field not in TUNABLE:
        raise InputError(f"only {', '.join(TUNABLE)} can be tuned", field=field)
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        control = get_control_or_raise(session=session, tenant_id=tenant.id, control_id=control_id)
        try:
            _tuned(control.spec, {field: value})
        except ValueError as exc:
            raise InputError(str(exc), record=f"control {control_id}", field=field) from exc
        now = utcnow()
        record = generic_record(
            type="result.derived",
            actor=actor,
            tenant=tenant_slug,
            at=now,
            subject={"kind": "control-tuning", "control": control_id, "field": field},
            details={"value": value, "previous": control.spec.model_dump(mode="json")[field]},
        )
        row = ControlTuning(
            tenant_id=tenant.id,
            control_id=control_id,
            field=field,
            value=value,
            actor=actor,
            created_at=now,
        )
        row.ledger_index = _append(app, tenant_slug, [record])
        session.add(row)
        session.flush()
        return row


def add_exception(
    *,
    app: App,
    tenant_slug: str,
    control_id: str,
    asset_id: int | None,
    reason: str,
    compensating_control: str,
    approved_by: str,
    starts_at: datetime,
    expires_at: datetime,
    actor: str,
) -> ControlException:
    """Record an approved exception (entered in the ledger); it applies until it expires."""
    if expires_at <= starts_at:
        raise InputError("must be after the start", field="expires_at")
    for name, text in (("reason", reason), ("approved_by", approved_by)):
        if not text.strip():
            raise InputError("must not be empty", field=name)
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        get_control_or_raise(session=session, tenant_id=tenant.id, control_id=control_id)
        if asset_id is not None:
            asset = session.get(Asset, asset_id)
            if asset is None or asset.tenant_id != tenant.id:
                raise NotFoundError(f"no asset {asset_id} for this tenant")
        row = ControlException(
            tenant_id=tenant.id,
            control_id=control_id,
            asset_id=asset_id,
            reason=reason,
            compensating_control=compensating_control,
            approved_by=approved_by,
            starts_at=starts_at,
            expires_at=expires_at,
            created_by=actor,
            created_at=utcnow(),
        )
        record = generic_record(
            type="result.derived",
            actor=actor,
            tenant=tenant_slug,
            at=row.created_at,
            subject={"kind": "control-exception", "control": control_id, "asset": asset_id},
            details={
                "reason": reason,
                "compensating_control": compensating_control,
                "approved_by": approved_by,
                "starts_at": format_utc(starts_at),
                "expires_at": format_utc(expires_at),
            },
        )
        row.ledger_index = _append(app, tenant_slug, [record])
        session.add(row)
        session.flush()
        return row


def list_exceptions(*, session: Session, tenant_id: int) -> Sequence[ControlException]:
    """Every exception of the tenant, oldest first."""
    query = (
        select(ControlException)
        .where(ControlException.tenant_id == tenant_id)
        .order_by(ControlException.id)
    )
    return session.scalars(query).all()


# --- evaluation ----------------------------------------------------------------


def fact_source(
    *, session: Session, tenant_id: int, facts_dir: Path, stored_before: datetime | None
) -> timeline.FactSource:
    """Everything the timeline needs about the tenant, read from the database."""
    # Plain rows through the connection: ORM loading of tens of thousands of rows cost
    # about half the time of an as-of evaluation's reads.
    assets, evidence = Asset.__table__.c, Evidence.__table__.c
    connection = session.connection()
    kinds = dict(
        connection.execute(select(assets.id, assets.kind).where(assets.tenant_id == tenant_id))
        .tuples()
        .all()
    )
    stored = dict(
        connection.execute(
            select(evidence.id, evidence.stored_at).where(evidence.tenant_id == tenant_id)
        )
        .tuples()
        .all()
    )
    exceptions = [
        timeline.ExceptionWindow(e.control_id, e.asset_id, e.starts_at, e.expires_at)
        for e in list_exceptions(session=session, tenant_id=tenant_id)
    ]
    files = fact_files(session=session, tenant_id=tenant_id, facts_dir=facts_dir)
    return timeline.FactSource(
        files=[f.path for f in files],
        days=[(f.day, f.last_day) for f in files],
        cache=tenant_folder(facts_dir=facts_dir, tenant_id=tenant_id),
        tenant_id=tenant_id,
        asset_kinds=kinds,
        stored_at=stored,
        stored_before=stored_before,
        exceptions=exceptions,
    )


def controls_digest(controls: dict[str, Control], source: timeline.FactSource) -> str:
    """SHA-256 of everything besides facts that results depend on: controls and exceptions."""
    document = {
        "controls": {cid: c.spec.model_dump(mode="json") for cid, c in sorted(controls.items())},
        "exceptions": [
            [e.control_id, e.asset_id, format_utc(e.starts_at), format_utc(e.expires_at)]
            for e in source.exceptions
        ],
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


@dataclass(frozen=True, slots=True)
class _Plan:
    digest: str
    max_evidence_id: int
    recompute_from: datetime
    stored: dict[str, dict[datetime, timeline.StepResult]]


def step_from_row(row: ControlStep) -> timeline.StepResult:
    """A stored step as the engine's result type."""
    return timeline.StepResult(
        control_id=row.control_id,
        at=row.at,
        status=row.status,
        in_scope=row.in_scope,
        passing=row.passing,
        failing=row.failing,
        unverified=row.unverified,
        excepted=row.excepted,
        backfilled=row.backfilled,
        coverage=row.coverage,
        evidence_ids=tuple(row.evidence_ids),
    )


def _plan(
    *,
    session: Session,
    tenant_id: int,
    controls: dict[str, Control],
    source: timeline.FactSource,
    window_start: datetime,
) -> _Plan:
    digest = controls_digest(controls, source)
    newest = (
        session.scalar(select(func.max(Evidence.id)).where(Evidence.tenant_id == tenant_id)) or 0
    )
    last = session.scalars(
        select(EvaluationRun)
        .where(EvaluationRun.tenant_id == tenant_id)
        .order_by(EvaluationRun.id.desc())
        .limit(1)
    ).first()
    if last is None or last.digest != digest:
        return _Plan(digest, newest, window_start, {})
    earliest = session.scalar(
        select(func.min(func.coalesce(Evidence.observed_from, Evidence.observed_to))).where(
            Evidence.tenant_id == tenant_id, Evidence.id > last.max_evidence_id
        )
    )
    retire = max((c.spec.retire_delta for c in controls.values()), default=timedelta(0))
    recompute_from = utcnow() + timedelta(days=36500) if earliest is None else earliest - retire
    stored: dict[str, dict[datetime, timeline.StepResult]] = defaultdict(dict)
    rows = session.scalars(
        select(ControlStep).where(
            ControlStep.tenant_id == tenant_id,
            ControlStep.at >= window_start,
            ControlStep.at < recompute_from,
        )
    )
    for row in rows:
        stored[row.control_id][row.at] = step_from_row(row)
    return _Plan(digest, newest, max(recompute_from, window_start), dict(stored))


def _day_records(
    *, tenant: str, actor: str, digest: str, computed: dict[str, list[timeline.StepResult]]
) -> list[dict[str, Any]]:
    by_day: dict[date, dict[str, list[timeline.StepResult]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for control_id, steps in computed.items():
        for step in steps:
            by_day[step.at.date()][control_id].append(step)
    now = utcnow()
    records = []
    for day, controls in sorted(by_day.items()):
        results = {cid: [step_json(s) for s in steps] for cid, steps in sorted(controls.items())}
        statuses = {cid: _worst([s.status for s in steps]) for cid, steps in controls.items()}
        records.append(
            generic_record(
                type="result.derived",
                actor=actor,
                tenant=tenant,
                at=now,
                subject={"kind": "control-evaluation", "day": day.isoformat(), "digest": digest},
                details={
                    "statuses": statuses,
                    "results_sha256": hashlib.sha256(canonical_json(results)).hexdigest(),
                },
            )
        )
    return records


def _worst(statuses: list[str]) -> str:
    for status in (timeline.FAIL, timeline.UNVERIFIED):
        if status in statuses:
            return status
    return timeline.PASS


def step_json(step: timeline.StepResult) -> dict[str, Any]:
    """A step result as JSON: for scripts, reports and the ledger's daily digests."""
    return {
        "at": format_utc(step.at),
        "status": step.status,
        "coverage": step.coverage,
        "in_scope": step.in_scope,
        "passing": step.passing,
        "failing": step.failing,
        "unverified": step.unverified,
        "excepted": step.excepted,
        "backfilled": step.backfilled,
        "provable": step.provable,
        "evidence_ids": list(step.evidence_ids),
    }


def _store(
    *,
    session: Session,
    tenant_id: int,
    run: EvaluationRun,
    computed: dict[str, list[timeline.StepResult]],
) -> None:
    for control_id, steps in computed.items():
        if not steps:
            continue
        session.execute(
            delete(ControlStep).where(
                ControlStep.tenant_id == tenant_id,
                ControlStep.control_id == control_id,
                ControlStep.at.in_([s.at for s in steps]),
            )
        )
        session.add_all(
            ControlStep(
                tenant_id=tenant_id,
                run_id=run.id,
                control_id=control_id,
                at=s.at,
                status=s.status,
                coverage=s.coverage,
                in_scope=s.in_scope,
                passing=s.passing,
                failing=s.failing,
                unverified=s.unverified,
                excepted=s.excepted,
                backfilled=s.backfilled,
                evidence_ids=list(s.evidence_ids),
            )
            for s in steps
        )
    session.flush()


def _timelines(
    *,
    controls: dict[str, Control],
    window: dict[str, list[timeline.StepResult]],
    at: dict[str, timeline.StepResult],
) -> list[ControlTimeline]:
    found = []
    for cid, control in sorted(controls.items()):
        steps = sorted(window[cid], key=lambda s: s.at)
        series = [(s.at, s.status) for s in steps]
        found.append(
            ControlTimeline(
                control=control,
                steps=steps,
                at=at[cid],
                continuity=continuity(control_id=cid, series=series),
                gaps=find_gaps(control_id=cid, series=series, step=control.spec.step_delta),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class EvaluateRequest:
    """What to evaluate: a moment, the window before it, and optionally a stored-before cut."""

    tenant_slug: str
    as_of: datetime
    window: timedelta = DEFAULT_WINDOW
    stored_before: datetime | None = None
    actor: str = "claimready"
    control_ids: tuple[str, ...] = ()


def evaluate(*, app: App, request: EvaluateRequest) -> WindowEvaluation:
    """Every control's state at ``as_of`` and over the window before it (see module doc)."""
    with array_work():
        return _evaluate(app=app, request=request)


def _evaluate(*, app: App, request: EvaluateRequest) -> WindowEvaluation:
    window_start = request.as_of - request.window
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=request.tenant_slug)
        controls = _select(get_controls(session=session, tenant_id=tenant.id), request)
        source = fact_source(
            session=session,
            tenant_id=tenant.id,
            facts_dir=app.settings.facts_dir,
            stored_before=request.stored_before,
        )
        store = request.stored_before is None and not request.control_ids
        plan = (
            _plan(
                session=session,
                tenant_id=tenant.id,
                controls=controls,
                source=source,
                window_start=window_start,
            )
            if store
            else _Plan("", 0, window_start, {})
        )
    computed, window, at = _compute(controls=controls, source=source, request=request, plan=plan)
    if store and any(computed.values()):
        _record_run(app=app, tenant=tenant, request=request, plan=plan, computed=computed)
    return WindowEvaluation(
        tenant=request.tenant_slug,
        as_of=request.as_of,
        window_start=window_start,
        stored_before=request.stored_before,
        recomputed_from=plan.recompute_from if store else None,
        controls=_timelines(controls=controls, window=window, at=at),
    )


def _select(controls: dict[str, Control], request: EvaluateRequest) -> dict[str, Control]:
    if not request.control_ids:
        return controls
    unknown = sorted(set(request.control_ids) - set(controls))
    if unknown:
        raise NotFoundError(f"no control(s) {unknown} (known: {', '.join(sorted(controls))})")
    return {cid: controls[cid] for cid in request.control_ids}


def _compute(
    *,
    controls: dict[str, Control],
    source: timeline.FactSource,
    request: EvaluateRequest,
    plan: _Plan,
) -> tuple[
    dict[str, list[timeline.StepResult]],
    dict[str, list[timeline.StepResult]],
    dict[str, timeline.StepResult],
]:
    computed: dict[str, list[timeline.StepResult]] = {}
    window: dict[str, list[timeline.StepResult]] = {}
    at: dict[str, timeline.StepResult] = {}
    window_start = request.as_of - request.window
    series: dict[str, list[datetime]] = {}
    wanted: dict[str, list[datetime]] = {}
    for cid, control in controls.items():
        steps = timeline.step_series(window_start, request.as_of, control.spec.step_delta)
        series[cid] = [s for s in steps if s >= window_start]
        known = plan.stored.get(cid, {})
        needed = [s for s in series[cid] if s not in known or s >= plan.recompute_from]
        # The moment asked about is kept too, so reports show the latest state; a stored
        # result for it that no newer evidence affects is the answer as it stands.
        current = request.as_of in known and request.as_of < plan.recompute_from
        wanted[cid] = needed if request.as_of in needed or current else [*needed, request.as_of]
    moments = sorted({s for steps in wanted.values() for s in steps})
    results = grid.evaluate(
        source, controls=list(controls.values()), steps=moments, types=signal_types()
    )
    for cid in controls:
        fresh = {r.at: r for r in results[cid]}
        known = plan.stored.get(cid, {})
        computed[cid] = [fresh[s] for s in wanted[cid]]
        window[cid] = [fresh[s] if s in fresh else known[s] for s in series[cid]]
        at[cid] = fresh[request.as_of] if request.as_of in fresh else known[request.as_of]
    return computed, window, at


def _record_run(
    *,
    app: App,
    tenant: Tenant,
    request: EvaluateRequest,
    plan: _Plan,
    computed: dict[str, list[timeline.StepResult]],
) -> None:
    records = _day_records(
        tenant=tenant.slug, actor=request.actor, digest=plan.digest, computed=computed
    )
    ledger_index = _append(app, tenant.slug, records)
    with transaction(app.sessions) as session:
        run = EvaluationRun(
            tenant_id=tenant.id,
            window_start=request.as_of - request.window,
            window_end=request.as_of,
            recomputed_from=plan.recompute_from,
            digest=plan.digest,
            max_evidence_id=plan.max_evidence_id,
            steps=sum(len(v) for v in computed.values()),
            actor=request.actor,
            ledger_index=ledger_index,
        )
        session.add(run)
        session.flush()
        _store(session=session, tenant_id=tenant.id, run=run, computed=computed)


def asset_detail(
    *, app: App, tenant_slug: str, control_id: str, at: datetime, stored_before: datetime | None
) -> list[timeline.AssetResult]:
    """Every in-scope asset of one control at one moment, computed on demand."""
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        control = get_control_or_raise(session=session, tenant_id=tenant.id, control_id=control_id)
        source = fact_source(
            session=session,
            tenant_id=tenant.id,
            facts_dir=app.settings.facts_dir,
            stored_before=stored_before,
        )
    with timeline.connect(source) as connection:
        return timeline.evaluate_assets(connection, control=control, at=at, types=signal_types())


def latest_steps(*, session: Session, tenant_id: int) -> dict[str, ControlStep]:
    """The newest stored step of each control for the tenant."""
    newest = (
        select(ControlStep.control_id, func.max(ControlStep.at).label("at"))
        .where(ControlStep.tenant_id == tenant_id)
        .group_by(ControlStep.control_id)
        .subquery()
    )
    query = (
        select(ControlStep)
        .join(
            newest,
            (ControlStep.control_id == newest.c.control_id) & (ControlStep.at == newest.c.at),
        )
        .where(ControlStep.tenant_id == tenant_id)
    )
    return {row.control_id: row for row in session.scalars(query)}
