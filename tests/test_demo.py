"""The demo builds a year of evidence and the EDR control finds exactly the gaps it injects."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from claimready.cli.app import main
from claimready.demo.run import EDR_CONTROL, first_day, injected_gaps, prepare_dir
from claimready.errors import ConflictError
from claimready.timeutil import format_utc, parse_utc


def test_demo_finds_every_injected_gap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path), "demo", "--dir", str(target), "--json"])
    assert exited.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    start = parse_utc(summary["first_day"])
    edr = next(c for c in summary["evaluations"]["acme-dental"] if c["id"] == EDR_CONTROL)
    found = [(g["status"], g["start"], g["end"]) for g in edr["gaps"]]
    before_first_export = ("unverified", format_utc(start), format_utc(start + timedelta(days=1)))
    expected = [(s, format_utc(a), format_utc(b)) for s, a, b in injected_gaps(start)]
    assert found == [before_first_export, *expected]
    organizational = {"accountability", "backups-isolated", "email-authentication", "log-retention"}
    for control in summary["evaluations"]["acme-dental"]:
        if control["id"] in organizational:
            assert control["at"]["status"] == "pass", control["id"]
    with pytest.raises(SystemExit):
        main(["--data-dir", str(target), "report", "--tenant", "acme-dental", "--json"])
    report = json.loads(capsys.readouterr().out)
    shown = {c["id"]: c for c in report["controls"]}
    assert shown[EDR_CONTROL]["status"] == "pass"
    assert shown[EDR_CONTROL]["provable"] is False  # imported today about last year


def test_first_day_is_a_midnight() -> None:
    start = first_day(parse_utc("2026-11-27T15:30:00Z"))
    assert format_utc(start) == "2025-11-27T00:00:00Z"


def test_demo_refuses_a_directory_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="not a claimready demo directory"):
        prepare_dir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
