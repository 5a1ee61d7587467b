"""Defender for Endpoint alerts: built fixture, malformed input, fuzzing and live collection."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings

from claimready.assets.identity import Identifier
from claimready.connectors.builtin.defender_alerts import (
    SIGNAL_ALERT,
    SIGNAL_ASSIGNED_TO,
    SIGNAL_CLASSIFICATION,
    SIGNAL_LAST_ALERT,
    SIGNAL_STATUS,
    DefenderAlertsConnector,
    collect_defender_alerts,
)
from claimready.connectors.registry import detect_connector
from claimready.timeutil import parse_utc
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_live import (
    MICROSOFT,
    RecordedApi,
    api,  # noqa: F401  (fixture)
    assert_well_formed,
    microsoft_config,
    mutated,
    normalize_path,
    only_input_errors,
)

FIXTURE = MICROSOFT / "defender_alerts.json"
CONNECTOR = DefenderAlertsConnector()


def _alerts() -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["value"]
    return alerts


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        return None


def _facts(result: Any, signal: str) -> set[tuple[str, Any]]:
    return {(f.asset_key, f.value) for f in result.facts if f.signal == signal}


def test_fixture_alerts_become_facts_per_machine() -> None:
    alerts = _alerts()
    result = normalize_path(CONNECTOR, FIXTURE)
    assert_well_formed(result)
    assert result.record_count == len(alerts)
    usable = [a for a in alerts if a["machineId"] and _time(a["alertCreationTime"])]
    assert _facts(result, SIGNAL_ALERT) == {
        (a["machineId"], f"{a['id']}|{a['severity']}") for a in usable
    }
    assert _facts(result, SIGNAL_STATUS) == {
        (a["machineId"], f"{a['id']}|{a['status']}") for a in usable
    }
    assert _facts(result, SIGNAL_ASSIGNED_TO) == {
        (a["machineId"], f"{a['id']}|{a['assignedTo']}") for a in usable if a["assignedTo"]
    }
    assert _facts(result, SIGNAL_CLASSIFICATION) == {
        (a["machineId"], f"{a['id']}|{a['classification']}") for a in usable if a["classification"]
    }
    newest: dict[str, datetime] = defaultdict(lambda: datetime.min.replace(tzinfo=UTC))
    for a in usable:
        newest[a["machineId"]] = max(newest[a["machineId"]], parse_utc(a["alertCreationTime"]))
    assert _facts(result, SIGNAL_LAST_ALERT) == set(newest.items())
    # Each alert fact is dated by its own creation time.
    created = {f"{a['id']}|{a['severity']}": parse_utc(a["alertCreationTime"]) for a in usable}
    for fact in result.facts:
        if fact.signal == SIGNAL_ALERT:
            assert fact.observed_at == created[str(fact.value)]


def test_machines_reconcile_with_the_machines_connector_and_bad_alerts_warn() -> None:
    alerts = _alerts()
    result = normalize_path(CONNECTOR, FIXTURE)
    machines = {a["machineId"] for a in alerts if a["machineId"]}
    assert {o.key for o in result.observations} == machines
    for observation in result.observations:
        assert Identifier("source_id", f"defender:{observation.key}") in observation.identifiers
    undated = [a for a in alerts if a["machineId"] and not _time(a["alertCreationTime"])]
    orphans = [a for a in alerts if not a["machineId"]]
    assert sorted(w.field for w in result.warnings) == sorted(
        ["alertCreationTime"] * len(undated) + ["machineId"] * len(orphans)
    )
    stamps = [_time(a["alertCreationTime"]) for a in alerts if a["machineId"]]
    stamps += [_time(a["lastUpdateTime"]) for a in alerts if a["machineId"]]
    assert result.observed_to == max(s for s in stamps if s is not None)


def test_observed_at_given_by_the_user_wins() -> None:
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    result = normalize_path(CONNECTOR, FIXTURE, observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}
    assert result.observed_to == moment


def test_detected_and_deterministic() -> None:
    head = FIXTURE.read_bytes()[:4096]
    assert detect_connector(name=FIXTURE.name, head=head).kind == "defender_alerts"
    assert normalize_path(CONNECTOR, FIXTURE) == normalize_path(CONNECTOR, FIXTURE)


@pytest.mark.parametrize(
    ("document", "record", "field", "message"),
    [
        ({"nope": []}, None, "value", "'value' array"),
        ({"value": {}}, None, "value", "expected an array"),
        ({"value": ["x"]}, 0, None, "expected an object"),
        ({"value": [{"severity": "Low", "status": "New"}]}, 0, "id", "missing"),
        ({"value": [{"id": "a", "severity": 3, "status": "New"}]}, 0, "severity", "found number"),
        (
            {"value": [{"id": "a", "severity": "Low", "status": "New", "machineId": ["m"]}]},
            0,
            "machineId",
            "expected text",
        ),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path, document: object, record: int | None, field: str | None, message: str
) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps(document))
    with raises_input_error(file="alerts.json", record=record, field=field, match=message):
        normalize_path(CONNECTOR, path)


@settings(max_examples=80, deadline=None)
@given(data=mutated(FIXTURE.read_bytes()))
def test_fuzz(data: bytes) -> None:
    only_input_errors(CONNECTOR, data, "alerts.json")


def test_collect_pages_and_normalizes_like_the_export(api: RecordedApi, tmp_path: Path) -> None:  # noqa: F811
    api.serve_token()
    api.serve_odata("/api/alerts", FIXTURE, page_size=4)
    since = datetime(2021, 1, 1, tzinfo=UTC)
    with api.client() as client:
        data = collect_defender_alerts(client, microsoft_config(), since=since, sleep=api.sleep)
    token_form = parse_qs(api.requests[0].content.decode())
    assert token_form["scope"] == ["https://api.securitycenter.microsoft.com/.default"]
    assert api.requests[1].url.params["$filter"] == "alertCreationTime ge 2021-01-01T00:00:00Z"
    assert api.requests[1].url.host == "api.securitycenter.microsoft.com"
    collected = tmp_path / "alerts.json"
    collected.write_bytes(data)
    assert normalize_path(CONNECTOR, collected).facts == normalize_path(CONNECTOR, FIXTURE).facts
