"""OSCAL plan of action and milestones: an item per gap, open ones first.

A gap that reaches the end of the window is open: its item, risk and
observation say so. Gaps that closed inside the window are kept as history
(risk status ``closed``), so a reviewer sees what was remediated and when.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from claimready.controls.gaps import Gap
from claimready.controls.service import ControlTimeline, WindowEvaluation
from claimready.oscal.build import (
    NS,
    EvidenceRef,
    Json,
    PackRef,
    back_matter,
    cited_evidence,
    gap_statement,
    is_open,
    metadata,
    prop,
    relevant_evidence,
    stable_uuid,
    window_key,
)
from claimready.timeutil import format_utc


def _gap_key(key: tuple[str, ...], gap: Gap) -> tuple[str, ...]:
    return (*key, gap.control_id, gap.status, format_utc(gap.start))


def _gap_evidence(timeline: ControlTimeline, gap: Gap) -> set[int]:
    inside = [s for s in timeline.steps if gap.start <= s.at < gap.end]
    return cited_evidence(timeline, inside)


def _gap_props(gap: Gap, state: str) -> list[Json]:
    return [
        prop("control-id", gap.control_id),
        prop("status", gap.status),
        prop("gap-state", state),
        prop("gap-start", gap.start),
        prop("gap-end", gap.end),
        prop("steps", gap.steps),
    ]


def gap_entries(
    timeline: ControlTimeline,
    gap: Gap,
    *,
    evaluation: WindowEvaluation,
    evidence: Mapping[int, EvidenceRef],
) -> tuple[Json, Json, Json]:
    """The observation, risk and POA&M item of one gap."""
    key = _gap_key(window_key(evaluation), gap)
    state = "open" if is_open(gap, timeline) else "closed"
    observation_uuid = stable_uuid("gap-observation", *key)
    risk_uuid = stable_uuid("gap-risk", *key)
    title = f"{timeline.control.spec.title}: {gap.status} from {format_utc(gap.start)}"
    observed: Json = {
        "uuid": observation_uuid,
        "title": title,
        "description": gap_statement(gap),
        "props": _gap_props(gap, state),
        "methods": ["TEST"],
        "types": ["finding"],
        "collected": format_utc(evaluation.as_of),
    }
    cited = relevant_evidence(_gap_evidence(timeline, gap), evidence, evaluation.tenant)
    if cited:
        observed["relevant-evidence"] = cited
    risk: Json = {
        "uuid": risk_uuid,
        "title": title,
        "description": gap_statement(gap),
        "statement": (
            f"While the gap lasts, {timeline.control.spec.title} cannot be shown to have "
            f"operated: {timeline.control.spec.objective}"
        ),
        "props": [prop("severity", timeline.control.spec.severity)],
        "status": state,
        "related-observations": [{"observation-uuid": observation_uuid}],
    }
    item: Json = {
        "uuid": stable_uuid("poam-item", *key),
        "title": title,
        "description": gap_statement(gap),
        "props": _gap_props(gap, state),
        "related-observations": [{"observation-uuid": observation_uuid}],
        "related-risks": [{"risk-uuid": risk_uuid}],
    }
    return observed, risk, item


def _entries(
    evaluations: Sequence[WindowEvaluation], evidence: Mapping[int, EvidenceRef]
) -> tuple[list[tuple[bool, Json, Json, Json]], set[int]]:
    entries: list[tuple[bool, Json, Json, Json]] = []
    cited: set[int] = set()
    for evaluation in evaluations:
        for timeline in evaluation.controls:
            for gap in timeline.gaps:
                observed, risk, item = gap_entries(
                    timeline, gap, evaluation=evaluation, evidence=evidence
                )
                entries.append((not is_open(gap, timeline), observed, risk, item))
                cited |= _gap_evidence(timeline, gap)
    entries.sort(key=lambda e: e[0])  # open gaps first; stable otherwise
    return entries, cited


def poam(
    evaluations: Sequence[WindowEvaluation],
    *,
    pack: PackRef,
    evidence: Mapping[int, EvidenceRef],
) -> Json | None:
    """An OSCAL POA&M with an item per gap in the windows; None when there is no gap."""
    entries, cited = _entries(evaluations, evidence)
    if not entries or not evaluations:
        return None
    tenant = evaluations[0].tenant
    as_of = max(e.as_of for e in evaluations)
    keys = [part for e in evaluations for part in window_key(e)]
    document: Json = {
        "uuid": stable_uuid("poam", *keys),
        "metadata": metadata(
            title=f"Plan of action and milestones for {tenant}",
            as_of=as_of,
            pack=pack,
            tenant=tenant,
        ),
        "system-id": {"identifier-type": f"{NS}:tenant", "id": tenant},
        "observations": [e[1] for e in entries],
        "risks": [e[2] for e in entries],
        "poam-items": [e[3] for e in entries],
        "back-matter": back_matter(
            pack=pack, evidence=[evidence[i] for i in sorted(cited) if i in evidence], tenant=tenant
        ),
    }
    return {"plan-of-action-and-milestones": document}
