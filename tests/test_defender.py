"""The Defender for Endpoint connector on the real sample and on malformed input."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from claimready.connectors.base import EvidenceFile
from claimready.connectors.builtin.defender import (
    SIGNAL_HEALTHY,
    SIGNAL_LAST_SEEN,
    SIGNAL_ONBOARDED,
    DefenderConnector,
)
from claimready.connectors.registry import all_connectors, detect_connector
from claimready.errors import InputError

COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _machines_in(zip_path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(zip_path) as archive:
        machines: list[dict[str, Any]] = json.loads(archive.read("machines/machines.json"))["value"]
    return machines


def _normalize(path: Path, observed_at: datetime | None = None) -> Any:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return DefenderConnector().normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def test_sample_machines_become_observations_and_facts(defender_sample: Path) -> None:
    machines = _machines_in(defender_sample)
    result = _normalize(defender_sample)
    assert result.record_count == len(machines)
    assert len(result.observations) == len(machines)
    onboarded = {f.asset_key: f.value for f in result.facts if f.signal == SIGNAL_ONBOARDED}
    healthy = {f.asset_key: f.value for f in result.facts if f.signal == SIGNAL_HEALTHY}
    assert onboarded == {m["id"]: m["onboardingStatus"] == "Onboarded" for m in machines}
    assert healthy == {m["id"]: m["healthStatus"] == "Active" for m in machines}
    # Every lastSeen in the sample is unreadable: no last_seen facts, one warning each.
    assert not [f for f in result.facts if f.signal == SIGNAL_LAST_SEEN]
    assert [(w.field, w.record.split()[0]) for w in result.warnings] == [
        ("lastSeen", str(i)) for i in range(len(machines))
    ]
    # With no time in the content, facts describe the collection time and say so.
    assert result.observed_to is None
    assert {f.observed_at for f in result.facts} == {COLLECTED}
    assert result.notes


def test_observed_at_given_by_the_user_wins(defender_sample: Path) -> None:
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    result = _normalize(defender_sample, observed_at=moment)
    assert result.observed_to == moment
    assert {f.observed_at for f in result.facts} == {moment}


def test_connector_is_registered_and_detected(defender_sample: Path) -> None:
    assert "defender" in all_connectors()
    head = defender_sample.read_bytes()[:4096]
    assert detect_connector(name=defender_sample.name, head=head).kind == "defender"


def _write(tmp_path: Path, document: object, name: str = "machines.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("document", "record", "field", "message"),
    [
        ({"nope": []}, None, "value", "'value' array"),
        ({"value": {}}, None, "value", "expected an array"),
        ({"value": [7]}, 0, None, "expected an object"),
        ({"value": [{"healthStatus": "Active", "onboardingStatus": "x"}]}, 0, "id", "missing"),
        (
            {"value": [{"id": "a", "healthStatus": 3, "onboardingStatus": "Onboarded"}]},
            0,
            "healthStatus",
            "expected text, found int",
        ),
        (
            {
                "value": [
                    {"id": "a", "healthStatus": "Active", "onboardingStatus": "Onboarded"},
                    {
                        "id": "b",
                        "healthStatus": "Active",
                        "onboardingStatus": "Onboarded",
                        "ipAddresses": "10.0.0.1",
                    },
                ]
            },
            1,
            "ipAddresses",
            "expected an array",
        ),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path, document: object, record: int | None, field: str | None, message: str
) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(InputError, match=message) as caught:
        _normalize(path)
    assert caught.value.file == path.name
    assert caught.value.record == record
    assert caught.value.field == field


def test_corrupt_and_incomplete_archives(tmp_path: Path, defender_sample: Path) -> None:
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(defender_sample.read_bytes()[:700])
    with pytest.raises(InputError, match="zip archive") as caught:
        _normalize(truncated)
    assert caught.value.file == "truncated.zip"
    empty = tmp_path / "other.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    with pytest.raises(InputError, match=r"no machines\.json"):
        _normalize(empty)
    not_json = _write(tmp_path, None, "broken.json")
    not_json.write_text('{"value": [')
    with pytest.raises(InputError, match=r"not valid JSON.*line 1"):
        _normalize(not_json)


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("machines/machines.json", b" " * 50_000_000)
    with pytest.raises(InputError, match="compression ratio"):
        _normalize(bomb)


def test_normalize_is_deterministic(defender_sample: Path) -> None:
    assert _normalize(defender_sample) == _normalize(defender_sample)
