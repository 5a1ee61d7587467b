"""The demo feeds a year of evidence through the real connectors; it finds exactly its gaps."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from claimready.cli.app import main
from claimready.demo.run import (
    EDR_CONTROL,
    INCIDENTS,
    TENANT,
    UNFED,
    expected_gaps,
    first_day,
    prepare_dir,
)
from claimready.errors import ConflictError
from claimready.timeutil import format_utc, parse_utc

YEAR = timedelta(days=365)


def _run_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    target = tmp_path / "demo"
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path), "demo", "--dir", str(target), "--json"])
    assert exited.value.code == 0
    return target, json.loads(capsys.readouterr().out)


def test_demo_finds_exactly_the_injected_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, summary = _run_demo(tmp_path, capsys)
    start = parse_utc(summary["first_day"])
    controls = {c["id"]: c for c in summary["evaluations"][TENANT]}
    assert len(controls) == 25
    expected = expected_gaps(start)
    for control_id, control in controls.items():
        found = [(g["status"], g["start"], g["end"]) for g in control["gaps"]]
        if control_id in UNFED:
            continue
        wanted = [(s, format_utc(a), format_utc(b)) for s, a, b in expected.get(control_id, [])]
        assert found == wanted, control_id  # every injected gap, exactly, and no other
        assert control["at"]["status"] == "pass", control_id
    assert all(incident["found"] for incident in summary["incidents"])
    assert len(summary["incidents"]) == len(INCIDENTS)
    assert "steps" not in controls[EDR_CONTROL]  # the summary stays small

    # every machine seen by the scanner, the RMM, osquery and the SIEM reconciled with the EDR
    with pytest.raises(SystemExit):
        main(["--data-dir", str(target), "report", "--tenant", TENANT, "--json"])
    report = json.loads(capsys.readouterr().out)
    shown = {c["id"]: c for c in report["controls"]}
    assert shown[EDR_CONTROL]["status"] == "pass"
    assert shown[EDR_CONTROL]["provable"] is False  # imported today about last year

    with pytest.raises(SystemExit):
        main(
            [
                "--data-dir",
                str(target),
                "gaps",
                "--tenant",
                TENANT,
                "--as-of",
                format_utc(start + YEAR),
                "--window",
                "365d",
                "--control",
                "mfa-privileged",
                "--json",
            ]
        )
    gaps = json.loads(capsys.readouterr().out)
    assert [(g["status"], g["start"], g["end"]) for g in gaps["gaps"]] == [
        (s, format_utc(a), format_utc(b)) for s, a, b in expected["mfa-privileged"]
    ]


def test_first_day_is_a_midnight() -> None:
    start = first_day(parse_utc("2026-11-27T15:30:00Z"))
    assert format_utc(start) == "2025-11-27T00:00:00Z"


def test_every_expected_gap_lies_inside_the_year() -> None:
    start = first_day(parse_utc("2026-11-27T15:30:00Z"))
    for gaps in expected_gaps(start).values():
        for _, gap_start, gap_end in gaps:
            assert start < gap_start < gap_end <= start + YEAR


def test_demo_refuses_a_directory_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="not a claimready demo directory"):
        prepare_dir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
