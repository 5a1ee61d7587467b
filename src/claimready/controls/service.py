"""Evaluate controls for a tenant and keep the results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.assets.models import Asset
from claimready.controls.definitions import CONTROLS, ControlDefinition
from claimready.controls.engine import ControlResult, evaluate_edr
from claimready.controls.models import Evaluation
from claimready.facts.query import assets_seen, latest_facts
from claimready.facts.store import fact_paths
from claimready.timeutil import format_utc


def evaluate_control(
    *,
    session: Session,
    tenant_id: int,
    facts_dir: Path,
    control: ControlDefinition,
    at: datetime,
) -> ControlResult:
    """The control's status at ``at`` from facts observed in its freshness window."""
    files = fact_paths(session=session, tenant_id=tenant_id, facts_dir=facts_dir, until=at)
    seen = assets_seen(files=files, tenant_id=tenant_id, at=at)
    rows = session.execute(select(Asset.id, Asset.kind).where(Asset.tenant_id == tenant_id))
    kinds: dict[int, str] = dict(rows.tuples().all())
    in_scope = [a for a in seen if kinds.get(a) in control.scope_kinds]
    facts = latest_facts(
        files=files,
        tenant_id=tenant_id,
        signals=control.signals,
        at=at,
        since=at - control.freshness,
    )
    return evaluate_edr(control=control, at=at, in_scope=in_scope, facts=facts)


def evaluate_all(
    *, session: Session, tenant_id: int, facts_dir: Path, at: datetime
) -> list[ControlResult]:
    """Evaluate every control at ``at`` and store the results."""
    results = []
    for control in CONTROLS.values():
        result = evaluate_control(
            session=session, tenant_id=tenant_id, facts_dir=facts_dir, control=control, at=at
        )
        session.add(_row(tenant_id=tenant_id, result=result))
        results.append(result)
    session.flush()
    return results


def _row(*, tenant_id: int, result: ControlResult) -> Evaluation:
    return Evaluation(
        tenant_id=tenant_id,
        control_id=result.control_id,
        at=result.at,
        status=result.status,
        coverage=result.coverage,
        in_scope=result.in_scope,
        passing=result.passing,
        failing=result.failing,
        unverified=result.unverified,
        details={
            "assets": [
                {
                    "asset_id": a.asset_id,
                    "status": a.status,
                    "reason": a.reason,
                    "evidence_ids": list(a.evidence_ids),
                }
                for a in result.assets
            ],
            "evidence_ids": result.evidence_ids,
            "at": format_utc(result.at),
        },
    )


def latest_evaluations(*, session: Session, tenant_id: int) -> Sequence[Evaluation]:
    """The most recent stored evaluation of each control for the tenant."""
    found: dict[str, Evaluation] = {}
    query = (
        select(Evaluation)
        .where(Evaluation.tenant_id == tenant_id)
        .order_by(Evaluation.evaluated_at.desc(), Evaluation.id.desc())
    )
    for evaluation in session.scalars(query):
        found.setdefault(evaluation.control_id, evaluation)
    return [found[k] for k in sorted(found)]
