"""The command line as a user drives it: output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from claimready.cli.app import main  # noqa: F401
from tests.conftest import Run


def _json(out: str) -> Any:
    return json.loads(out)


def test_the_slice_end_to_end(run: Run, defender_sample: Path) -> None:
    assert run("init")[0] == 0
    code, out, _ = run("tenant", "add", "acme", "--name", "Acme Corp", "--json")
    assert code == 0 and _json(out)["slug"] == "acme"
    code, out, err = run("ingest", "--tenant", "acme", "--source", "defender", str(defender_sample))
    assert code == 0
    assert "stored evidence 1" in out and "2 records -> 2 assets, 6 facts" in out
    assert "field 'lastSeen'" in err
    code, out, _ = run("evaluate", "--tenant", "acme", "--json")
    controls = {c["id"]: c for c in _json(out)["controls"]}
    assert code == 0 and controls["edr-coverage"]["at"]["status"] == "fail"
    assert controls["edr-coverage"]["at"]["evidence_ids"] == [1]
    code, out, _ = run("report", "--tenant", "acme")
    assert code == 0 and "edr-coverage" in out and "edr.onboarded=False" in out
    code, out, _ = run("report", "--tenant", "acme", "--json")
    report = next(c for c in _json(out)["controls"] if c["id"] == "edr-coverage")
    assert report["status"] == "fail" and report["provable"] is True
    assert report["evidence"][0]["file"] == defender_sample.name
    assert {a["status"] for a in report["assets"]} == {"fail", "unverified"}


def test_errors_are_one_line_with_exit_codes(
    run: Run, defender_sample: Path, tmp_path: Path
) -> None:
    code, _, err = run("tenant", "list")
    assert (
        code == 1 and err.strip() == "error: the database is not initialized; run: claimready init"
    )
    run("init")
    code, _, err = run("ingest", "--tenant", "ghost", str(defender_sample))
    assert code == 1 and err.startswith("error: unknown tenant 'ghost'")
    assert len(err.strip().splitlines()) == 1
    run("tenant", "add", "acme")
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(defender_sample.read_bytes()[:500])
    code, _, err = run("ingest", "--tenant", "acme", "--source", "defender", str(corrupt))
    assert code == 1 and "corrupt.zip: not a valid zip archive" in err
    code, _, err = run("evaluate", "--tenant", "acme", "--as-of", "yesterday")
    assert code == 2 and "--as-of 'yesterday'" in err
    code, _, err = run("ingest", "--tenant", "acme", "--source", "frobscan", str(defender_sample))
    assert code == 2 and "unknown source kind 'frobscan'" in err
    code, _, err = run("frobnicate")
    assert code == 2 and "No such command" in err
    assert "Traceback" not in err


def test_tenant_list_json(run: Run) -> None:
    run("init")
    run("tenant", "add", "globex")
    run("tenant", "add", "acme")
    code, out, _ = run("tenant", "list", "--json")
    assert code == 0 and [t["slug"] for t in _json(out)] == ["acme", "globex"]


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-dir"
        blocked.write_text("")
        data_dir = blocked / "data"
    else:
        data_dir = tmp_path / "ro"
        data_dir.mkdir(mode=0o500)
    result = subprocess.run(
        [sys.executable, "-m", "claimready", "--data-dir", str(data_dir), "init"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CLAIMREADY_")},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and str(data_dir.parent) in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help() -> None:
    commands = [
        [],
        ["init"],
        ["upgrade"],
        ["ingest"],
        ["evaluate"],
        ["report"],
        ["demo"],
        ["tenant"],
        ["tenant", "add"],
        ["tenant", "list"],
    ]
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "claimready", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, command
        assert "Usage:" in result.stdout
