"""Evaluate a control at one moment: per-asset status, then the control's status.

A control is ``pass`` when the share of in-scope assets that pass reaches the
threshold; ``fail`` when it cannot reach it even if every unverified asset
turned out to pass; otherwise ``unverified``. No in-scope asset with fresh
evidence is ``unverified``, never ``pass``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from claimready.connectors.builtin.defender import (
    SIGNAL_HEALTH_STATUS,
    SIGNAL_HEALTHY,
    SIGNAL_LAST_SEEN,
    SIGNAL_ONBOARDED,
)
from claimready.controls.definitions import ControlDefinition
from claimready.controls.models import FAIL, PASS, UNVERIFIED
from claimready.facts.models import StoredFact
from claimready.timeutil import format_utc


@dataclass(frozen=True, slots=True)
class AssetStatus:
    """One asset's status under a control, with the reason and the evidence it rests on."""

    asset_id: int
    status: str
    reason: str
    evidence_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ControlResult:
    """A control's status at one moment."""

    control_id: str
    at: datetime
    status: str
    in_scope: int
    passing: int
    failing: int
    unverified: int
    coverage: float | None
    assets: tuple[AssetStatus, ...] = field(default_factory=tuple)

    @property
    def evidence_ids(self) -> list[int]:
        """Every evidence record cited by any asset, once each."""
        return sorted({e for a in self.assets for e in a.evidence_ids})


def aggregate(
    *, control: ControlDefinition, at: datetime, assets: Sequence[AssetStatus]
) -> ControlResult:
    """Combine per-asset statuses into the control's status by its threshold."""
    counts = {PASS: 0, FAIL: 0, UNVERIFIED: 0}
    for asset in assets:
        counts[asset.status] += 1
    total = len(assets)
    if total == 0:
        status, coverage = UNVERIFIED, None
    else:
        coverage = counts[PASS] / total
        if coverage >= control.threshold:
            status = PASS
        elif (counts[PASS] + counts[UNVERIFIED]) / total < control.threshold:
            status = FAIL
        else:
            status = UNVERIFIED
    return ControlResult(
        control_id=control.id,
        at=at,
        status=status,
        in_scope=total,
        passing=counts[PASS],
        failing=counts[FAIL],
        unverified=counts[UNVERIFIED],
        coverage=coverage,
        assets=tuple(assets),
    )


def edr_asset_status(
    *, asset_id: int, facts: Mapping[str, StoredFact], control: ControlDefinition, at: datetime
) -> AssetStatus:
    """Whether EDR is onboarded, healthy and recently in contact on one asset."""
    cited = tuple(sorted({f.evidence_id for f in facts.values()}))
    onboarded = facts.get(SIGNAL_ONBOARDED)
    healthy = facts.get(SIGNAL_HEALTHY)
    if onboarded is None or healthy is None:
        since = format_utc(at - control.freshness)
        return AssetStatus(asset_id, UNVERIFIED, f"no EDR evidence observed since {since}", cited)
    if onboarded.value is not True:
        return AssetStatus(asset_id, FAIL, "not onboarded to EDR", cited)
    if healthy.value is not True:
        status = facts.get(SIGNAL_HEALTH_STATUS)
        shown = status.value if status is not None else "not healthy"
        return AssetStatus(asset_id, FAIL, f"sensor health status {shown}", cited)
    last_seen = facts.get(SIGNAL_LAST_SEEN)
    if last_seen is None or not isinstance(last_seen.value, datetime):
        return AssetStatus(asset_id, UNVERIFIED, "sensor's last contact unknown", cited)
    if last_seen.value < at - control.freshness:
        when = format_utc(last_seen.value)
        reason = f"sensor last reported {when}, over {_hours(control)} h before"
        return AssetStatus(asset_id, FAIL, reason, cited)
    reason = f"onboarded, healthy, reported within {_hours(control)} h"
    return AssetStatus(asset_id, PASS, reason, cited)


def _hours(control: ControlDefinition) -> int:
    return int(control.freshness.total_seconds() // 3600)


def evaluate_edr(
    *,
    control: ControlDefinition,
    at: datetime,
    in_scope: Sequence[int],
    facts: Sequence[StoredFact],
) -> ControlResult:
    """Evaluate the EDR control for the in-scope assets from their latest fresh facts."""
    by_asset: dict[int, dict[str, StoredFact]] = defaultdict(dict)
    for fact in facts:
        by_asset[fact.asset_id][fact.signal] = fact
    statuses = [
        edr_asset_status(asset_id=a, facts=by_asset.get(a, {}), control=control, at=at)
        for a in in_scope
    ]
    return aggregate(control=control, at=at, assets=statuses)
