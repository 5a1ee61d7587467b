"""Gaps are maximal runs of one non-pass status; continuity counts steps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from claimready.controls.gaps import continuity, find_gaps

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@given(st.lists(st.sampled_from(["pass", "fail", "unverified"]), max_size=60))
def test_gaps_cover_exactly_the_non_pass_steps(statuses: list[str]) -> None:
    series = [(START + i * DAY, s) for i, s in enumerate(statuses)]
    gaps = find_gaps(control_id="c", series=series, step=DAY)
    covered: dict[datetime, str] = {}
    for gap in gaps:
        assert gap.status != "pass"
        assert gap.end - gap.start == gap.steps * DAY
        moment = gap.start
        while moment < gap.end:
            assert moment not in covered
            covered[moment] = gap.status
            moment += DAY
    assert covered == {at: s for at, s in series if s != "pass"}
    for before, after in itertools.pairwise(gaps):
        assert before.end < after.start or before.status != after.status
    result = continuity(control_id="c", series=series)
    assert result.passing + result.failing + result.unverified == len(statuses)
    assert result.share == (statuses.count("pass") / len(statuses) if statuses else None)


def test_gap_runs_to_the_end_of_the_window() -> None:
    series = [(START, "pass"), (START + DAY, "fail"), (START + 2 * DAY, "unverified")]
    gaps = find_gaps(control_id="c", series=series, step=DAY)
    assert [(g.status, g.start, g.end) for g in gaps] == [
        ("fail", START + DAY, START + 2 * DAY),
        ("unverified", START + 2 * DAY, START + 3 * DAY),
    ]
