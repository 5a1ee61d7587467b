"""Export a tenant's evaluation as OSCAL assessment results and a POA&M, validated."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.app import App
from claimready.canonical import canonical_json
from claimready.controls import service as controls
from claimready.controls.pack import baseline
from claimready.controls.service import EvaluateRequest, WindowEvaluation
from claimready.db.engine import transaction
from claimready.evidence.models import Evidence
from claimready.frameworks.catalog import load_catalog
from claimready.oscal.assessment import assessment_results
from claimready.oscal.build import NIST_FRAMEWORK, EvidenceRef, PackRef, cited_evidence
from claimready.oscal.poam import poam
from claimready.oscal.validate import validate
from claimready.tenants import service as tenants

_CHUNK = 5000  # evidence ids per query, well under every database's parameter limit


@dataclass(frozen=True, slots=True)
class OscalExport:
    """The evaluation exported and the two documents (``poam`` is None without gaps)."""

    evaluation: WindowEvaluation
    assessment_results: dict[str, Any]
    poam: dict[str, Any] | None
    evidence: int


def pack_ref(evaluation: WindowEvaluation) -> PackRef:
    """The pack the evaluation used, with the SHA-256 of its controls' canonical JSON."""
    pack = baseline()
    specs = sorted(
        (t.control.spec.model_dump(mode="json") for t in evaluation.controls),
        key=lambda spec: str(spec["id"]),
    )
    body = {"pack": pack.name, "version": pack.version, "controls": specs}
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    return PackRef(name=pack.name, title=pack.title, version=pack.version, digest=digest)


def nist_map() -> dict[str, str]:
    """SP 800-53 rev5 ids (``IA-2(1)``) to their OSCAL catalog ids (``ia-2.1``)."""
    catalog = load_catalog(NIST_FRAMEWORK)
    return {item.id: item.oscal_id for item in catalog.items if item.oscal_id}


def _ref(row: Evidence) -> EvidenceRef:
    return EvidenceRef(
        sha256=row.sha256,
        ledger_index=row.ledger_index,
        media_type=row.media_type,
        original_name=row.original_name,
        connector=row.connector,
        size=row.size,
        collected_at=row.collected_at,
        stored_at=row.stored_at,
        observed_to=row.observed_to,
        observed_from=row.observed_from,
    )


def evidence_refs(
    *, session: Session, tenant_id: int, ids: Iterable[int]
) -> dict[int, EvidenceRef]:
    """The tenant's evidence rows with these ids, as export references."""
    wanted = sorted(set(ids))
    found: dict[int, EvidenceRef] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = session.scalars(
            select(Evidence).where(Evidence.tenant_id == tenant_id, Evidence.id.in_(chunk))
        )
        found.update({row.id: _ref(row) for row in rows})
    return found


def build(
    *, app: App, evaluations: Sequence[WindowEvaluation]
) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """Both documents for already evaluated windows of one tenant, validated."""
    ids = {i for ev in evaluations for t in ev.controls for i in cited_evidence(t)}
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=evaluations[0].tenant)
        evidence = evidence_refs(session=session, tenant_id=tenant.id, ids=ids)
    pack = pack_ref(evaluations[0])
    results = assessment_results(evaluations, pack=pack, evidence=evidence, nist=nist_map())
    validate(results, model="assessment-results")
    plan = poam(evaluations, pack=pack, evidence=evidence)
    if plan is not None:
        validate(plan, model="plan-of-action-and-milestones")
    return results, plan, len(evidence)


def export(*, app: App, request: EvaluateRequest) -> OscalExport:
    """Evaluate the tenant's controls over the window and export both documents."""
    evaluation = controls.evaluate(app=app, request=request)
    results, plan, cited = build(app=app, evaluations=[evaluation])
    return OscalExport(evaluation=evaluation, assessment_results=results, poam=plan, evidence=cited)
