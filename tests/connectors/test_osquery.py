"""The osquery result-log connector on a fixture built from the osquery documentation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from claimready.connectors.builtin.osquery import OsqueryConnector
from claimready.connectors.registry import detect_connector
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_jsonlines import (
    FUZZ,
    facts_by,
    mutated,
    normalize_file,
    only_input_errors,
)

LOG = Path(__file__).resolve().parents[1] / "assets" / "osquery" / "osqueryd.results.log"


def _lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]


def _state(query: str) -> dict[str, list[dict[str, str]]]:
    """Replay the log independently: the current rows of one query per host."""
    tables: dict[str, list[dict[str, str]]] = {}
    for line in _lines():
        if not line["name"].endswith(query) or "unixTime" not in line:
            continue
        rows = tables.setdefault(line["hostIdentifier"], [])
        if line["action"] == "snapshot":
            tables[line["hostIdentifier"]] = list(line["snapshot"])
        elif line["action"] == "added":
            rows.append(line["columns"])
        else:
            rows.remove(line["columns"])
    return tables


def test_detected_as_osquery() -> None:
    assert detect_connector(name=LOG.name, head=LOG.read_bytes()[:4096]).kind == "osquery"


def test_security_center_state_is_the_latest_snapshot() -> None:
    result = normalize_file(OsqueryConnector(), LOG)
    assert result.record_count == len(_lines())
    for host, rows in _state("windows_security_center").items():
        for column, signal in (("antivirus", "av.enabled"), ("firewall", "firewall.enabled")):
            word = rows[0][column]
            expected = None if word not in ("Good", "Poor", "Snoozed") else [word == "Good"]
            assert facts_by(result, signal).get(host) == expected
    assert any(w.field == "firewall" for w in result.warnings)


def test_encryption_needs_every_current_volume_protected() -> None:
    result = normalize_file(OsqueryConnector(), LOG)
    expected = {
        host: [all(row["protection_status"] == "1" for row in rows)]
        for host, rows in _state("bitlocker_info").items()
        if rows
    }
    assert facts_by(result, "device.encrypted") == expected


def test_newest_patch_and_os_version() -> None:
    result = normalize_file(OsqueryConnector(), LOG)
    newest: dict[str, datetime] = {}
    for host, rows in _state("patches").items():
        for row in rows:
            try:
                moment = datetime.strptime(row["installed_on"], "%m/%d/%Y").replace(tzinfo=UTC)
            except ValueError:
                continue
            newest[host] = max(newest.get(host, moment), moment)
    assert {k: v[0] for k, v in facts_by(result, "patch.last_installed").items()} == newest
    versions = {h: [rows[0]["version"]] for h, rows in _state("os_version").items()}
    assert facts_by(result, "device.os_version") == versions


def test_host_identity_from_identifier_and_decorations() -> None:
    result = normalize_file(OsqueryConnector(), LOG)
    by_key = {o.key: o for o in result.observations}
    decorated = next(line for line in _lines() if "decorations" in line)
    host = by_key[decorated["hostIdentifier"]]
    values = {(i.kind, i.value) for i in host.identifiers}
    assert ("serial", decorated["decorations"]["hardware_serial"]) in values
    assert ("source_id", "osquery:" + decorated["decorations"]["host_uuid"].lower()) in values
    uuid_host = next(k for k in by_key if k.count("-") == 4)
    assert by_key[uuid_host].kind == "server"
    assert ("source_id", f"osquery:{uuid_host.lower()}") in {
        (i.kind, i.value) for i in by_key[uuid_host].identifiers
    }


def test_unreadable_query_time_is_a_warning() -> None:
    result = normalize_file(OsqueryConnector(), LOG)
    bad = [i + 1 for i, line in enumerate(_lines()) if "unixTime" not in line]
    assert [w.record for w in result.warnings if w.field == "unixTime"] == [
        f"line {n}" for n in bad
    ]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"hostIdentifier": "a", "unixTime": 1}, "name"),
        ({"name": "os_version", "unixTime": 1}, "hostIdentifier"),
        ({"name": "os_version", "hostIdentifier": "a", "unixTime": 1, "action": "x"}, "action"),
        ({"name": "os_version", "hostIdentifier": "a", "unixTime": 1, "snapshot": {}}, "snapshot"),
        (
            {
                "name": "os_version",
                "hostIdentifier": "a",
                "unixTime": 1,
                "action": "added",
                "columns": 3,
            },
            "columns",
        ),
    ],
)
def test_wrong_shapes_name_line_and_field(tmp_path: Path, line: dict[str, Any], field: str) -> None:
    path = tmp_path / "results.log"
    path.write_text(json.dumps(line) + "\n")
    with raises_input_error(file="results.log", record="line 1", field=field):
        normalize_file(OsqueryConnector(), path)


def test_observed_at_wins_and_deterministic() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    result = normalize_file(OsqueryConnector(), LOG, observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}
    assert normalize_file(OsqueryConnector(), LOG) == normalize_file(OsqueryConnector(), LOG)


@FUZZ
@given(data=mutated(LOG.read_bytes()))
def test_fuzz_osquery(data: bytes) -> None:
    only_input_errors(OsqueryConnector(), data, "results.log")
