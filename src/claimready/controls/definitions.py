"""Control definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from claimready.connectors.builtin.defender import (
    SIGNAL_HEALTH_STATUS,
    SIGNAL_HEALTHY,
    SIGNAL_LAST_SEEN,
    SIGNAL_ONBOARDED,
)

ENDPOINT_KINDS: tuple[str, ...] = ("workstation", "server", "endpoint")


@dataclass(frozen=True, slots=True)
class ControlDefinition:
    """A testable requirement over signals."""

    id: str
    title: str
    objective: str
    scope_kinds: tuple[str, ...]
    signals: tuple[str, ...]
    threshold: float
    freshness: timedelta


EDR_HEALTHY = ControlDefinition(
    id="edr-healthy",
    title="EDR healthy on endpoints",
    objective=(
        "EDR is onboarded and its sensor healthy on at least 98% of endpoints, "
        "shown by evidence at most 26 hours old"
    ),
    scope_kinds=ENDPOINT_KINDS,
    signals=(SIGNAL_ONBOARDED, SIGNAL_HEALTHY, SIGNAL_HEALTH_STATUS, SIGNAL_LAST_SEEN),
    threshold=0.98,
    freshness=timedelta(hours=26),
)

CONTROLS: dict[str, ControlDefinition] = {c.id: c for c in (EDR_HEALTHY,)}
