"""Intune managed devices: built fixture, malformed input, fuzzing and live collection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from claimready.assets.identity import Identifier
from claimready.connectors.builtin.intune import (
    SIGNAL_COMPLIANT,
    SIGNAL_ENCRYPTED,
    SIGNAL_LAST_SYNC,
    SIGNAL_OS,
    IntuneConnector,
    collect_intune_devices,
)
from claimready.connectors.registry import detect_connector
from claimready.timeutil import parse_utc
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_live import (
    MICROSOFT,
    RecordedApi,
    api,  # noqa: F401  (fixture)
    assert_well_formed,
    facts_of,
    microsoft_config,
    mutated,
    normalize_path,
    only_input_errors,
)

FIXTURE = MICROSOFT / "intune_managed_devices.json"
CONNECTOR = IntuneConnector()


def _devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["value"]
    return devices


def test_fixture_devices_become_facts() -> None:
    devices = _devices()
    result = normalize_path(CONNECTOR, FIXTURE)
    assert_well_formed(result)
    assert result.record_count == len(devices) == len(result.observations)
    known = {"compliant", "noncompliant", "conflict", "error", "inGracePeriod"}
    assert facts_of(result, SIGNAL_COMPLIANT) == {
        d["id"]: d["complianceState"] == "compliant"
        for d in devices
        if d["complianceState"] in known
    }
    assert facts_of(result, SIGNAL_ENCRYPTED) == {d["id"]: d["isEncrypted"] for d in devices}
    assert facts_of(result, SIGNAL_OS) == {d["id"]: d["operatingSystem"] for d in devices}
    synced = {d["id"]: parse_utc(d["lastSyncDateTime"]) for d in devices}
    real = {k: v for k, v in synced.items() if v.year > 1}
    assert facts_of(result, SIGNAL_LAST_SYNC) == real
    assert result.observed_to == max(real.values())
    assert {f.observed_at for f in result.facts} == {max(real.values())}
    unknown = [d for d in devices if d["complianceState"] not in known]
    never = [d for d in devices if synced[d["id"]].year == 1]
    assert sorted(w.field for w in result.warnings) == sorted(
        ["complianceState"] * len(unknown) + ["lastSyncDateTime"] * len(never)
    )


def test_identifiers_skip_null_guid_and_placeholder_serial() -> None:
    devices = {d["id"]: d for d in _devices()}
    result = normalize_path(CONNECTOR, FIXTURE)
    for observation in result.observations:
        raw = devices[observation.key]
        kinds = {i.kind for i in observation.identifiers}
        assert Identifier("source_id", f"intune:{raw['id']}") in observation.identifiers
        zero = raw["azureADDeviceId"].strip("0-") == ""
        assert ("cloud_id" in kinds) is not zero
        placeholder = raw["serialNumber"].upper() == "TO BE FILLED BY O.E.M."
        assert ("serial" in kinds) is not placeholder
        assert ("mac" in kinds) is bool(raw["wiFiMacAddress"] or raw["ethernetMacAddress"])


def test_observed_at_wins_and_undated_export_says_so(tmp_path: Path) -> None:
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    assert {f.observed_at for f in normalize_path(CONNECTOR, FIXTURE, moment).facts} == {moment}
    devices = _devices()
    for device in devices:
        device["lastSyncDateTime"] = None
    path = tmp_path / "devices.json"
    path.write_text(json.dumps({"value": devices}))
    result = normalize_path(CONNECTOR, path)
    assert result.observed_to is None and result.notes


def test_detected_and_deterministic() -> None:
    head = FIXTURE.read_bytes()[:4096]
    assert detect_connector(name=FIXTURE.name, head=head).kind == "intune"
    assert normalize_path(CONNECTOR, FIXTURE) == normalize_path(CONNECTOR, FIXTURE)


@pytest.mark.parametrize(
    ("document", "record", "field", "message"),
    [
        ({"devices": []}, None, "value", "'value' array"),
        ({"value": [1]}, 0, None, "expected an object"),
        ({"value": [{"id": "a"}]}, 0, "complianceState", "missing"),
        (
            {"value": [{"id": "a", "complianceState": "compliant", "isEncrypted": "yes"}]},
            0,
            "isEncrypted",
            "expected true or false",
        ),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path, document: object, record: int | None, field: str | None, message: str
) -> None:
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(document))
    with raises_input_error(file="devices.json", record=record, field=field, match=message):
        normalize_path(CONNECTOR, path)


@settings(max_examples=60, deadline=None)
@given(data=mutated(FIXTURE.read_bytes()))
def test_fuzz(data: bytes) -> None:
    only_input_errors(CONNECTOR, data, "devices.json")


def test_collect_pages_and_normalizes_like_the_export(api: RecordedApi, tmp_path: Path) -> None:  # noqa: F811
    api.serve_token()
    api.serve_odata("/v1.0/deviceManagement/managedDevices", FIXTURE, page_size=2)
    with api.client() as client:
        data = collect_intune_devices(client, microsoft_config(), sleep=api.sleep)
    assert len(api.requests) == 1 + -(-len(_devices()) // 2)
    collected = tmp_path / "devices.json"
    collected.write_bytes(data)
    assert normalize_path(CONNECTOR, collected).facts == normalize_path(CONNECTOR, FIXTURE).facts
