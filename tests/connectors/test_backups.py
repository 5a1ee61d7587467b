"""Veeam, restic, borg and restore-test connectors on fixtures built from vendor documentation."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given

from claimready.connectors.base import Connector
from claimready.connectors.builtin.backups import (
    BorgConnector,
    ResticConnector,
    RestoreTestConnector,
    VeeamConnector,
)
from claimready.connectors.registry import detect_connector
from claimready.errors import InputError
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_jsonlines import (
    FUZZ,
    facts_by,
    mutated,
    normalize_file,
    only_input_errors,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "backups"
VEEAM = ASSETS / "veeam-sessions.json"
RESTIC = ASSETS / "restic-snapshots.json"
BORG_LIST = ASSETS / "borg-list.json"
BORG_INFO = ASSETS / "borg-info.json"
RESTORE_CSV = ASSETS / "restore-tests.csv"
RESTORE_JSON = ASSETS / "restore-tests.json"


def _time(text: str | None) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else None


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (VEEAM, "veeam"),
        (RESTIC, "restic"),
        (BORG_LIST, "borg"),
        (BORG_INFO, "borg"),
        (RESTORE_CSV, "restore-test"),
        (RESTORE_JSON, "restore-test"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_detected_as_own_kind(path: Path, kind: str) -> None:
    assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == kind


def test_veeam_jobs() -> None:
    sessions = json.loads(VEEAM.read_text())["data"]
    jobs = {s["jobId"] for s in sessions if s["jobId"] and s["sessionType"].endswith("Job")}
    finished = [
        s
        for s in sessions
        if s["jobId"] in jobs and s["state"] == "Stopped" and _time(s["endTime"])
    ]
    result = normalize_file(VeeamConnector(), VEEAM)
    assert {o.key for o in result.observations} == jobs
    assert all(o.kind == "backup_job" for o in result.observations)
    for job in jobs:
        runs: list[tuple[datetime, str]] = sorted(
            (end, s["result"]["result"])
            for s in finished
            if s["jobId"] == job and (end := _time(s["endTime"])) is not None
        )
        assert facts_by(result, "backup.last_result")[job] == [runs[-1][1]]
        successes = [end for end, outcome in runs if outcome == "Success"]
        assert facts_by(result, "backup.last_success").get(job) == (
            [max(successes)] if successes else None
        )
        failures = [end for end, outcome in runs if outcome == "Failed"]
        assert facts_by(result, "backup.last_failure").get(job) == (
            [max(failures)] if failures else None
        )
    unreadable = [
        s
        for s in sessions
        if s["state"] == "Stopped" and s["jobId"] in jobs and not _time(s["endTime"])
    ]
    assert len(result.warnings) == len(unreadable)


def test_restic_latest_snapshot_per_host() -> None:
    snapshots = json.loads(RESTIC.read_text())
    latest: dict[str, datetime] = {}
    for snapshot in snapshots:
        # Python reads at most microseconds; restic writes nanoseconds.
        moment = _time(re.sub(r"(\.\d{6})\d+", r"\1", snapshot["time"]))
        host = snapshot["hostname"].lower()
        if moment is not None:
            latest[host] = max(latest.get(host, moment), moment)
    result = normalize_file(ResticConnector(), RESTIC)
    assert {k: v[0] for k, v in facts_by(result, "backup.last_success").items()} == latest
    assert {o.key for o in result.observations} == {s["hostname"].lower() for s in snapshots}
    assert [w.field for w in result.warnings] == ["time"]


@pytest.mark.parametrize("path", [BORG_LIST, BORG_INFO], ids=lambda p: p.name)
def test_borg_latest_complete_archive(path: Path) -> None:
    document = json.loads(path.read_text())
    complete = [a for a in document["archives"] if ".checkpoint" not in a["name"]]
    times = [_time(a.get("end") or a.get("time")) for a in complete]
    key = f"borg:{document['repository']['id']}"
    result = normalize_file(BorgConnector(), path)
    assert facts_by(result, "backup.last_success") == {key: [max(t for t in times if t)]}
    assert len(result.warnings) == sum(t is None for t in times)


def test_restore_tests_csv_and_json() -> None:
    with RESTORE_CSV.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    good: dict[str, datetime] = {}
    for row in rows:
        moment = _time(row["tested_at"])
        if row["result"].lower() in ("success", "passed") and moment:
            good[row["job"]] = max(good.get(row["job"], moment), moment)
    result = normalize_file(RestoreTestConnector(), RESTORE_CSV)
    assert {k: v[0] for k, v in facts_by(result, "backup.restore_tested").items()} == good
    assert [w.field for w in result.warnings] == ["tested_at"]
    veeam = next(o for o in result.observations if o.key == "Daily VM backup")
    assert [i.value for i in veeam.identifiers] == [rows[0]["job_id"]]
    records = json.loads(RESTORE_JSON.read_text())["restore_tests"]
    result = normalize_file(RestoreTestConnector(), RESTORE_JSON)
    assert set(facts_by(result, "backup.restore_tested")) == {r["job"] for r in records}


@pytest.mark.parametrize(
    ("connector", "document", "record", "field"),
    [
        (VeeamConnector(), {"data": [{"sessionType": 1}]}, 0, "sessionType"),
        (VeeamConnector(), {"items": []}, "document", "data"),
        (ResticConnector(), [{"time": "2025-01-01T00:00:00Z", "paths": []}], 0, "hostname"),
        (BorgConnector(), {"archives": [], "repository": {}}, "document", "repository.id"),
        (
            RestoreTestConnector(),
            [{"job": "x", "tested_at": "2025-01-01T00:00:00Z", "result": "ok"}],
            0,
            "verified_by",
        ),
    ],
)
def test_wrong_shapes_name_record_and_field(
    tmp_path: Path, connector: Connector, document: object, record: object, field: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with raises_input_error(file="bad.json", record=record, field=field):
        normalize_file(connector, path)


def test_csv_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "tests.csv"
    path.write_text("job,when\nx,y\n")
    with pytest.raises(InputError, match="lacks columns"):
        normalize_file(RestoreTestConnector(), path)


def test_observed_at_wins_and_results_are_deterministic() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    for connector, path in (
        (VeeamConnector(), VEEAM),
        (ResticConnector(), RESTIC),
        (BorgConnector(), BORG_INFO),
    ):
        result = normalize_file(connector, path, observed_at=moment)
        assert {f.observed_at for f in result.facts} == {moment}
        assert normalize_file(connector, path) == normalize_file(connector, path)


@FUZZ
@given(data=mutated(VEEAM.read_bytes()))
def test_fuzz_veeam(data: bytes) -> None:
    only_input_errors(VeeamConnector(), data, "sessions.json")


@FUZZ
@given(data=mutated(RESTIC.read_bytes()))
def test_fuzz_restic(data: bytes) -> None:
    only_input_errors(ResticConnector(), data, "snapshots.json")


@FUZZ
@given(data=mutated(BORG_LIST.read_bytes()))
def test_fuzz_borg(data: bytes) -> None:
    only_input_errors(BorgConnector(), data, "borg.json")


@FUZZ
@given(data=mutated(RESTORE_JSON.read_bytes()))
def test_fuzz_restore_json(data: bytes) -> None:
    only_input_errors(RestoreTestConnector(), data, "restore.json")


@FUZZ
@given(data=mutated(RESTORE_CSV.read_bytes()))
def test_fuzz_restore_csv(data: bytes) -> None:
    only_input_errors(RestoreTestConnector(), data, "restore.csv")
