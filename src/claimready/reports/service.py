"""The readiness report as data; the CLI renders it as a table or JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.assets.models import Asset
from claimready.controls.definitions import CONTROLS
from claimready.controls.models import Evaluation
from claimready.controls.service import latest_evaluations
from claimready.evidence.models import Evidence
from claimready.sources.models import Source
from claimready.tenants.models import Tenant
from claimready.timeutil import format_utc, utcnow


def build_report(*, session: Session, tenant: Tenant) -> dict[str, Any]:
    """Every control's latest evaluation with its assets and the evidence it cites."""
    evaluations = latest_evaluations(session=session, tenant_id=tenant.id)
    rows = session.execute(select(Asset.id, Asset.display_name).where(Asset.tenant_id == tenant.id))
    names: dict[int, str] = dict(rows.tuples().all())
    return {
        "tenant": {"slug": tenant.slug, "name": tenant.name},
        "generated_at": format_utc(utcnow()),
        "controls": [
            _control(session=session, tenant=tenant, evaluation=e, names=names) for e in evaluations
        ],
    }


def _control(
    *, session: Session, tenant: Tenant, evaluation: Evaluation, names: dict[int, str]
) -> dict[str, Any]:
    definition = CONTROLS.get(evaluation.control_id)
    assets = [
        {**a, "asset": names.get(a["asset_id"], f"asset {a['asset_id']}")}
        for a in evaluation.details.get("assets", [])
    ]
    return {
        "id": evaluation.control_id,
        "title": definition.title if definition else evaluation.control_id,
        "objective": definition.objective if definition else "",
        "at": format_utc(evaluation.at),
        "evaluated_at": format_utc(evaluation.evaluated_at),
        "status": evaluation.status,
        "coverage": evaluation.coverage,
        "in_scope": evaluation.in_scope,
        "passing": evaluation.passing,
        "failing": evaluation.failing,
        "unverified": evaluation.unverified,
        "assets": assets,
        "evidence": _evidence(
            session=session, tenant=tenant, ids=evaluation.details.get("evidence_ids", [])
        ),
    }


def _evidence(*, session: Session, tenant: Tenant, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    query = (
        select(Evidence, Source.name)
        .join(Source, Source.id == Evidence.source_id)
        .where(Evidence.tenant_id == tenant.id, Evidence.id.in_(ids))
        .order_by(Evidence.id)
    )
    return [
        {
            "id": evidence.id,
            "sha256": evidence.sha256,
            "source": source_name,
            "file": evidence.original_name,
            "collected_at": format_utc(evidence.collected_at),
            "stored_at": format_utc(evidence.stored_at),
            "observed_to": format_utc(evidence.observed_to),
            "observed_origin": evidence.observed_origin,
            "ledger_index": evidence.ledger_index,
            "warnings": len(evidence.warnings),
        }
        for evidence, source_name in session.execute(query)
    ]
