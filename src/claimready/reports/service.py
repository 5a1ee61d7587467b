"""The readiness report as data; the CLI renders it as a table or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.app import App
from claimready.assets import service as assets
from claimready.controls.models import PASS, ControlStep
from claimready.controls.service import (
    asset_detail,
    get_controls,
    latest_steps,
    step_from_row,
    step_json,
)
from claimready.evidence.models import Evidence
from claimready.sources.models import Source
from claimready.tenants.models import Tenant
from claimready.timeutil import format_utc, utcnow


def build_report(*, app: App, session: Session, tenant: Tenant) -> dict[str, Any]:
    """Every control's latest evaluated step with its non-passing assets and cited evidence.

    Each control says whether its evidence was stored in the ledger before the
    moment it speaks about (provable) or imported afterwards (backfilled).
    """
    controls = get_controls(session=session, tenant_id=tenant.id)
    steps = latest_steps(session=session, tenant_id=tenant.id)
    names = {a.id: a.display_name for a in assets.get_all(session=session, tenant_id=tenant.id)}
    report: dict[str, Any] = {
        "tenant": {"slug": tenant.slug, "name": tenant.name},
        "generated_at": format_utc(utcnow()),
        "controls": [
            _control(
                session=session,
                tenant=tenant,
                step=steps[cid],
                title=c.spec.title,
                objective=c.spec.objective,
            )
            for cid, c in sorted(controls.items())
            if cid in steps
        ],
    }
    for control in report["controls"]:
        step = steps[control["id"]]
        control["assets"] = (
            []
            if step.status == PASS
            else _assets_not_passing(app=app, tenant=tenant, step=step, names=names)
        )
    return report


def _assets_not_passing(
    *, app: App, tenant: Tenant, step: ControlStep, names: dict[int, str]
) -> list[dict[str, Any]]:
    """The in-scope assets that did not pass at the step, with the values they were judged on."""
    detail = asset_detail(
        app=app, tenant_slug=tenant.slug, control_id=step.control_id, at=step.at, stored_before=None
    )
    return [
        {
            "asset_id": a.asset_id,
            "asset": names.get(a.asset_id, f"asset {a.asset_id}"),
            "kind": a.kind,
            "status": a.status,
            "values": {k: _shown(v) for k, v in sorted(a.values.items())},
            "evidence_ids": list(a.evidence_ids),
        }
        for a in detail
        if a.status != PASS
    ]


def _shown(value: Any) -> Any:
    return format_utc(value) if isinstance(value, datetime) else value


def _control(
    *, session: Session, tenant: Tenant, step: ControlStep, title: str, objective: str
) -> dict[str, Any]:
    result = step_json(step_from_row(step))
    evidence_ids = result.pop("evidence_ids")
    return {
        "id": step.control_id,
        "title": title,
        "objective": objective,
        **result,
        "evidence": _evidence(session=session, tenant=tenant, ids=evidence_ids),
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
