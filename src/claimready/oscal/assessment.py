"""OSCAL assessment results: one result per evaluated window, a finding per control."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from claimready.controls.service import ControlTimeline, WindowEvaluation
from claimready.errors import InputError
from claimready.oscal.build import (
    EvidenceRef,
    Json,
    PackRef,
    back_matter,
    cited_evidence,
    control_props,
    metadata,
    nist_ids,
    pack_resource,
    passing,
    prop,
    relevant_evidence,
    stable_uuid,
    status_reason,
    window_key,
    window_title,
    windows_evidence,
)
from claimready.timeutil import format_utc


def reviewed_controls(timelines: Sequence[ControlTimeline], nist: Mapping[str, str]) -> Json:
    """The pack's controls, selected by their SP 800-53 rev5 ids where the pack maps them.

    A control without a mapping is selected by our own id. A property names
    each of our control ids.
    """
    selected = sorted({nist[c] for t in timelines for c in nist_ids(t) if c in nist})
    unmapped = sorted(t.control.id for t in timelines if not any(c in nist for c in nist_ids(t)))
    ids = selected + [cid for cid in unmapped if cid not in selected]
    return {
        "description": "The controls of the pack, by SP 800-53 rev5 id where mapped.",
        "props": [prop("control-id", t.control.id) for t in timelines],
        "control-selections": [{"include-controls": [{"control-id": cid} for cid in ids]}],
    }


def observation(
    timeline: ControlTimeline,
    *,
    key: tuple[str, ...],
    evaluation: WindowEvaluation,
    evidence: Mapping[int, EvidenceRef],
) -> Json:
    """What the evaluation saw for one control over the window, citing its evidence."""
    control = timeline.control
    c = timeline.continuity
    found: Json = {
        "uuid": stable_uuid("observation", *key, control.id),
        "title": f"{control.spec.title}: evaluated every {control.spec.step}",
        "description": (
            f"{control.spec.objective} Over the window: {c.passing} of {c.steps} step(s) pass, "
            f"{c.failing} fail, {c.unverified} unverified; {len(timeline.gaps)} gap(s)."
        ),
        "props": [prop("control-id", control.id), prop("status", timeline.at.status)],
        "methods": ["TEST"],
        "types": ["control-objective"],
        "collected": format_utc(evaluation.as_of),
    }
    cited = relevant_evidence(cited_evidence(timeline), evidence, evaluation.tenant)
    if cited:
        found["relevant-evidence"] = cited
    return found


def finding(timeline: ControlTimeline, *, key: tuple[str, ...], nist: Mapping[str, str]) -> Json:
    """One control's finding: satisfied when it passes at the moment asked, else not."""
    control = timeline.control
    status = timeline.at.status
    target_status: Json = {
        "state": "satisfied" if passing(timeline) else "not-satisfied",
        "reason": status_reason(status),
    }
    if status not in ("pass", "fail"):
        target_status["remarks"] = f"Status {status}: no fresh evidence decided the control."
    return {
        "uuid": stable_uuid("finding", *key, control.id),
        "title": control.spec.title,
        "description": control.spec.objective,
        "props": control_props(timeline, nist),
        "target": {
            "type": "objective-id",
            "target-id": control.id,
            "status": target_status,
        },
        "related-observations": [
            {"observation-uuid": stable_uuid("observation", *key, control.id)}
        ],
    }


def result(
    evaluation: WindowEvaluation, *, evidence: Mapping[int, EvidenceRef], nist: Mapping[str, str]
) -> Json:
    """One evaluated window: reviewed controls, an observation and a finding per control."""
    key = window_key(evaluation)
    props = [prop("window-start", evaluation.window_start), prop("as-of", evaluation.as_of)]
    if evaluation.stored_before is not None:
        props.append(prop("stored-before", evaluation.stored_before))
    found: Json = {
        "uuid": stable_uuid("result", *key),
        "title": window_title(evaluation),
        "description": (
            "Continuous evaluation of the control pack over the window, from normalized facts "
            "derived from ledger evidence. Status is pass, fail or unverified (no fresh "
            "evidence); unverified is never counted as satisfied."
        ),
        "start": format_utc(evaluation.window_start),
        "end": format_utc(evaluation.as_of),
        "props": props,
        "reviewed-controls": reviewed_controls(evaluation.controls, nist),
    }
    if evaluation.controls:
        found["observations"] = [
            observation(t, key=key, evaluation=evaluation, evidence=evidence)
            for t in evaluation.controls
        ]
        found["findings"] = [finding(t, key=key, nist=nist) for t in evaluation.controls]
    return found


def assessment_results(
    evaluations: Sequence[WindowEvaluation],
    *,
    pack: PackRef,
    evidence: Mapping[int, EvidenceRef],
    nist: Mapping[str, str],
) -> Json:
    """An OSCAL assessment-results document: one result per evaluated window.

    ``evidence`` maps evidence ids (as cited by steps) to what the export says
    about them; ``nist`` maps SP 800-53 ids (``IA-2(1)``) to OSCAL ids (``ia-2.1``).
    """
    if not evaluations:
        raise InputError("no evaluated window to export")
    tenant = evaluations[0].tenant
    as_of = max(e.as_of for e in evaluations)
    keys = [part for e in evaluations for part in window_key(e)]
    plan = pack_resource(pack, tenant)
    document: Json = {
        "uuid": stable_uuid("assessment-results", *keys),
        "metadata": metadata(
            title=f"Control assessment results for {tenant}", as_of=as_of, pack=pack, tenant=tenant
        ),
        "import-ap": {
            "href": f"#{plan['uuid']}",
            "remarks": (
                "No OSCAL assessment plan is published; this reference resolves to the "
                "back-matter resource describing the control pack and its digest."
            ),
        },
        "results": [result(e, evidence=evidence, nist=nist) for e in evaluations],
        "back-matter": back_matter(
            pack=pack, evidence=windows_evidence(evaluations, evidence), tenant=tenant
        ),
    }
    return {"assessment-results": document}
