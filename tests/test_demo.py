"""The demo builds its story on its own database and tells it the same way every time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimready.cli.app import main
from claimready.demo.run import prepare_dir
from claimready.errors import ConflictError


def test_demo_runs_twice_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    summaries = []
    for _ in range(2):
        with pytest.raises(SystemExit) as exited:
            main(["--data-dir", str(tmp_path), "demo", "--dir", str(target), "--json"])
        assert exited.value.code == 0
        summaries.append(json.loads(capsys.readouterr().out))
    assert summaries[0] == summaries[1]
    statuses = {k: v[0]["status"] for k, v in summaries[0]["evaluations"].items()}
    assert statuses == {
        "acme-dental (30 days ago)": "pass",
        "acme-dental (now)": "fail",
        "globex-lab (now)": "fail",
    }
    with pytest.raises(SystemExit):
        main(["--data-dir", str(target), "report", "--tenant", "acme-dental", "--json"])
    report = json.loads(capsys.readouterr().out)
    control = report["controls"][0]
    assert control["status"] == "fail"
    assert (control["in_scope"], control["passing"]) == (120, 116)


def test_demo_refuses_a_directory_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="not a claimready demo directory"):
        prepare_dir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
