"""Continuity and gaps: pure functions over a control's step series.

A step at ``t`` speaks for the interval ``[t, t + step)``. A gap is a maximal
run of consecutive steps with the same non-pass status (``fail`` or
``unverified``); it starts at its first step and ends where the next step with
another status begins (or at the end of the window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

PASS = "pass"  # noqa: S105 - a status, not a secret


@dataclass(frozen=True, slots=True)
class Gap:
    """A maximal interval in which a control had one non-pass status."""

    control_id: str
    status: str
    start: datetime
    end: datetime
    steps: int

    @property
    def duration(self) -> timedelta:
        """How long the gap lasted."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Continuity:
    """The share of a window's steps in pass, and the time in each status."""

    control_id: str
    steps: int
    passing: int
    failing: int
    unverified: int

    @property
    def share(self) -> float | None:
        """Share of steps in pass (None for an empty window)."""
        return self.passing / self.steps if self.steps else None


def find_gaps(
    *, control_id: str, series: Sequence[tuple[datetime, str]], step: timedelta
) -> list[Gap]:
    """Maximal runs of the same non-pass status in ``series`` (sorted by time, evenly spaced)."""
    gaps: list[Gap] = []
    run_status: str | None = None
    run_start: datetime | None = None
    run_steps = 0
    for at, status in series:
        if status == run_status:
            run_steps += 1
            continue
        if run_status is not None and run_start is not None:
            gaps.append(Gap(control_id, run_status, run_start, at, run_steps))
        run_status, run_start, run_steps = (None, None, 0) if status == PASS else (status, at, 1)
    if run_status is not None and run_start is not None:
        end = series[-1][0] + step
        gaps.append(Gap(control_id, run_status, run_start, end, run_steps))
    return gaps


def continuity(*, control_id: str, series: Sequence[tuple[datetime, str]]) -> Continuity:
    """How many of the steps were pass, fail and unverified."""
    statuses = [s for _, s in series]
    return Continuity(
        control_id=control_id,
        steps=len(statuses),
        passing=statuses.count(PASS),
        failing=statuses.count("fail"),
        unverified=statuses.count("unverified"),
    )
