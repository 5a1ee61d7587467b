"""Build OSCAL assessment results and a POA&M from control evaluations (pure functions).

Every UUID is a version-5 UUID of the tenant, the window and the object it
names (control, gap, evidence), so the same evaluation always yields the same
document, byte for byte. Times come from the evaluation, never the clock.

Properties of our own carry the namespace :data:`NS`; OSCAL's own property
names (none are used here) would carry none.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from claimready.controls.gaps import Gap
from claimready.controls.models import PASS, UNVERIFIED
from claimready.controls.service import ControlTimeline, WindowEvaluation
from claimready.oscal.validate import OSCAL_VERSION
from claimready.timeutil import format_utc

NS = "urn:claimready:oscal"
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, NS)
_NIST_ID = re.compile(r"^([A-Z]{2})-(\d+)(?:\((\d+)\))?$")
NIST_FRAMEWORK = "nist-800-53-r5"

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    """What an export says about one evidence file: its hash and its three times."""

    sha256: str
    ledger_index: int | None
    media_type: str
    original_name: str
    connector: str
    size: int
    collected_at: datetime
    stored_at: datetime
    observed_to: datetime
    observed_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class PackRef:
    """The control pack an evaluation used, and the digest of its (tuned) controls."""

    name: str
    title: str
    version: str
    digest: str


def stable_uuid(*parts: str) -> str:
    """A version-5 UUID of ``parts``: the same parts give the same UUID."""
    return str(uuid.uuid5(_UUID_NAMESPACE, "\x1f".join(parts)))


def nist_oscal_id(control_id: str) -> str | None:
    """The OSCAL catalog id of an SP 800-53 id (``IA-2(1)`` -> ``ia-2.1``), None if not one."""
    match = _NIST_ID.match(control_id)
    if match is None:
        return None
    family, number, enhancement = match.groups()
    base = f"{family.lower()}-{number}"
    return f"{base}.{enhancement}" if enhancement else base


def prop(name: str, value: object) -> Json:
    """A claimready property (namespaced)."""
    text = format_utc(value) if isinstance(value, datetime) else str(value)
    return {"name": name, "ns": NS, "value": text}


def ni_uri(sha256: str) -> str:
    """The RFC 6920 name of content with this SHA-256 (``ni:///sha-256;<base64url>``)."""
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256)).rstrip(b"=").decode("ascii")
    return f"ni:///sha-256;{digest}"


def evidence_href(sha256: str) -> str:
    """How observations cite an evidence file: a fragment naming its SHA-256."""
    return f"#evidence-{sha256}"


def window_key(evaluation: WindowEvaluation) -> tuple[str, ...]:
    """The parts that identify one evaluated window of one tenant."""
    stored = format_utc(evaluation.stored_before) if evaluation.stored_before else "-"
    return (
        evaluation.tenant,
        format_utc(evaluation.window_start),
        format_utc(evaluation.as_of),
        stored,
    )


def cited_evidence(timeline: ControlTimeline, steps: Iterable[Any] | None = None) -> set[int]:
    """Ids of the evidence cited by the control's steps (all steps of the window by default)."""
    chosen = timeline.steps if steps is None else steps
    return {evidence_id for step in chosen for evidence_id in step.evidence_ids}


def is_open(gap: Gap, timeline: ControlTimeline) -> bool:
    """True when the gap reaches the end of the window (still open at the last step)."""
    return bool(timeline.steps) and gap.end > timeline.steps[-1].at


# --- back matter --------------------------------------------------------------


def pack_resource(pack: PackRef, tenant: str) -> Json:
    """The back-matter resource that stands in for the assessment plan: the control pack."""
    return {
        "uuid": stable_uuid("pack", tenant, pack.name, pack.digest),
        "title": f"Control pack {pack.name} {pack.version}: {pack.title}",
        "description": (
            "The control definitions (scope, predicate, threshold, freshness) this assessment "
            "evaluated, with the tenant's tuning applied. The digest is the SHA-256 of their "
            "canonical JSON. No separate OSCAL assessment plan exists; import-ap points here."
        ),
        "props": [
            prop("control-pack", pack.name),
            prop("control-pack-version", pack.version),
            prop("control-pack-sha256", pack.digest),
        ],
    }


def evidence_resource(evidence: EvidenceRef, tenant: str) -> Json:
    """A back-matter resource for one evidence file, with its hash and three times."""
    props = [
        prop("evidence-sha256", evidence.sha256),
        prop("connector", evidence.connector),
        prop("collected", evidence.collected_at),
        prop("stored", evidence.stored_at),
        prop("observed-to", evidence.observed_to),
    ]
    if evidence.observed_from is not None:
        props.append(prop("observed-from", evidence.observed_from))
    if evidence.ledger_index is not None:
        props.append(prop("ledger-index", evidence.ledger_index))
    return {
        "uuid": evidence_uuid(tenant, evidence.sha256),
        "title": f"Evidence {evidence.original_name}" if evidence.original_name else "Evidence",
        "description": f"{evidence.size} bytes collected by {evidence.connector}.",
        "props": props,
        "rlinks": [
            {
                "href": ni_uri(evidence.sha256),
                "media-type": evidence.media_type,
                "hashes": [{"algorithm": "SHA-256", "value": evidence.sha256}],
            }
        ],
    }


def evidence_uuid(tenant: str, sha256: str) -> str:
    """The UUID of an evidence file's back-matter resource."""
    return stable_uuid("evidence", tenant, sha256)


def relevant_evidence(
    ids: Iterable[int], evidence: Mapping[int, EvidenceRef], tenant: str
) -> list[Json]:
    """Citations of evidence files, sorted by hash, each linking to its back-matter resource."""
    cited = sorted(
        {evidence[i].sha256: evidence[i] for i in ids if i in evidence}.values(),
        key=lambda e: e.sha256,
    )
    return [
        {
            "href": evidence_href(e.sha256),
            "description": f"Evidence file {e.original_name} (SHA-256 {e.sha256}).",
            "links": [{"href": f"#{evidence_uuid(tenant, e.sha256)}", "rel": "reference"}],
        }
        for e in cited
    ]


def back_matter(*, pack: PackRef | None, evidence: Iterable[EvidenceRef], tenant: str) -> Json:
    """The back matter: the pack (when given) and each evidence file once, sorted by hash."""
    unique = {e.sha256: e for e in evidence}
    resources = [pack_resource(pack, tenant)] if pack is not None else []
    resources += [evidence_resource(unique[sha], tenant) for sha in sorted(unique)]
    return {"resources": resources}


def metadata(*, title: str, as_of: datetime, pack: PackRef, tenant: str) -> Json:
    """Document metadata; last-modified is the evaluation's moment, so output is reproducible."""
    return {
        "title": title,
        "last-modified": format_utc(as_of),
        "version": f"{pack.name} {pack.version} as of {format_utc(as_of)}",
        "oscal-version": OSCAL_VERSION,
        "props": [prop("tenant", tenant), prop("control-pack-sha256", pack.digest)],
    }


def control_props(timeline: ControlTimeline, nist: Mapping[str, str]) -> list[Json]:
    """Our control id, the three-valued status, continuity and gap counts of one control."""
    continuity = timeline.continuity
    props = [
        prop("control-id", timeline.control.id),
        prop("status", timeline.at.status),
        prop("severity", timeline.control.spec.severity),
        prop("steps", continuity.steps),
        prop("passing-steps", continuity.passing),
        prop("failing-steps", continuity.failing),
        prop("unverified-steps", continuity.unverified),
        prop("gaps", len(timeline.gaps)),
        prop("open-gaps", sum(is_open(g, timeline) for g in timeline.gaps)),
    ]
    if continuity.share is not None:
        props.append(prop("continuity", f"{continuity.share:.4f}"))
    props += [prop("nist-800-53-r5", nist[c]) for c in nist_ids(timeline) if c in nist]
    return props


def nist_ids(timeline: ControlTimeline) -> tuple[str, ...]:
    """The SP 800-53 rev5 ids the control's pack entry maps it to."""
    return timeline.control.spec.frameworks.get(NIST_FRAMEWORK, ())


def status_reason(status: str) -> str:
    """OSCAL's finding reason for our status: pass, fail, or other (unverified)."""
    return status if status in ("pass", "fail") else "other"


def gap_statement(gap: Gap) -> str:
    """One sentence about a gap, for descriptions."""
    what = "no fresh evidence (unverified)" if gap.status == UNVERIFIED else "failing"
    return (
        f"Control {gap.control_id} was {what} from {format_utc(gap.start)} "
        f"to {format_utc(gap.end)} ({gap.steps} step(s))."
    )


def window_title(evaluation: WindowEvaluation) -> str:
    """A one-line title for a window."""
    return (
        f"Controls of {evaluation.tenant} from {format_utc(evaluation.window_start)} "
        f"to {format_utc(evaluation.as_of)}"
    )


def passing(timeline: ControlTimeline) -> bool:
    """True when the control passes at the moment asked."""
    return timeline.at.status == PASS


def windows_evidence(
    evaluations: Sequence[WindowEvaluation], evidence: Mapping[int, EvidenceRef]
) -> list[EvidenceRef]:
    """Every evidence file cited anywhere in the evaluations."""
    ids = {i for ev in evaluations for t in ev.controls for i in cited_evidence(t)}
    return [evidence[i] for i in sorted(ids) if i in evidence]
