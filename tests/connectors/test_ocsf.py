"""The OCSF connector on the real Prowler samples and a fixture of the other classes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from claimready.connectors.builtin.ocsf import OcsfConnector
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

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "ocsf_prowler"
EVENTS = Path(__file__).resolve().parents[1] / "assets" / "ocsf" / "events.ocsf.jsonl"
PROWLER = sorted(SAMPLES.glob("*.ocsf.json"))


def _lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path", [*PROWLER, EVENTS], ids=lambda p: p.name)
def test_detected_as_ocsf(path: Path) -> None:
    assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == "ocsf"


@pytest.mark.parametrize("path", PROWLER, ids=lambda p: p.name)
def test_prowler_findings_become_posture_facts(path: Path) -> None:
    events = json.loads(path.read_text())
    failed: dict[str, set[str]] = defaultdict(set)
    passed: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for event in events:
        for resource in event["resources"]:
            target = failed if event["status_code"] == "FAIL" else passed
            if event["status_code"] in ("PASS", "FAIL"):
                target[resource["uid"]].add(event["metadata"]["event_code"])
            counts[resource["uid"]] += event["status_code"] == "FAIL"
    result = normalize_file(OcsfConnector(), path)
    assert result.record_count == len(events)
    assert {k: set(v) for k, v in facts_by(result, "posture.check_failed").items()} == failed
    assert {k: set(v) for k, v in facts_by(result, "posture.check_passed").items()} == passed
    assert {k: v[0] for k, v in facts_by(result, "posture.failed_count").items()} == counts
    assert {o.kind for o in result.observations} == {"cloud_resource"}
    # Prowler writes epoch seconds; the connector says so and reads them as seconds.
    assert result.observed_to == datetime.fromtimestamp(max(e["time"] for e in events), tz=UTC)
    assert result.notes


def test_other_classes_map_to_their_signals() -> None:
    events = _lines()
    result = normalize_file(OcsfConnector(), EVENTS)
    assert result.record_count == len(events)
    open_vulns = [e for e in events if e["class_uid"] == 2002 and e.get("status_id") in (1, 2)]
    expected_cves = {v["cve"]["uid"] for e in open_vulns for v in e["vulnerabilities"]}
    assert {c for v in facts_by(result, "vuln.cve").values() for c in v} == expected_cves
    auth = [e for e in events if e["class_uid"] == 3002]
    per_user = Counter(e["user"]["uid"] for e in auth)
    assert {k: v[0] for k, v in facts_by(result, "signin.count").items()} == per_user
    single = [e for e in auth if e["status_id"] == 1 and e.get("is_mfa") is False]
    assert set(facts_by(result, "signin.single_factor")) == {e["user"]["uid"] for e in single}
    inventory = next(e for e in events if e["class_uid"] == 5001)
    assert facts_by(result, "device.os") == {
        inventory["device"]["uid"]: [inventory["device"]["os"]["name"]]
    }
    patch = next(e for e in events if e["class_uid"] == 5004)
    pending = sum(
        a["install_state_id"] == 2 and a["severity"] == "Critical" for a in patch["kb_article_list"]
    )
    assert facts_by(result, "patch.pending_critical") == {patch["device"]["uid"]: [pending]}
    device = next(o for o in result.observations if o.key == inventory["device"]["uid"])
    assert device.kind == "workstation"
    assert {i.kind for i in device.identifiers} >= {
        "source_id",
        "fqdn",
        "hostname",
        "serial",
        "mac",
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("metadata"), "$.metadata"),
        (lambda e: e["finding_info"].pop("uid"), "$.finding_info.uid"),
        (lambda e: e.update(resources=[{"uid": 7}]), "$.resources[0].uid"),
        (lambda e: e.update(class_uid=9999), "class_uid"),
        (lambda e: e.update(time="yesterday"), "$.time"),
    ],
)
def test_schema_failures_name_record_and_json_path(tmp_path: Path, mutate: Any, field: str) -> None:
    events = json.loads(PROWLER[0].read_text())
    mutate(events[1])
    path = tmp_path / "bad.ocsf.json"
    path.write_text(json.dumps(events))
    with raises_input_error(file="bad.ocsf.json", record=1, field=field):
        normalize_file(OcsfConnector(), path)


def test_jsonlines_errors_name_the_line(tmp_path: Path) -> None:
    lines = EVENTS.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["vulnerabilities"] = []
    lines[2] = json.dumps(broken)
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        normalize_file(OcsfConnector(), path)
    assert (caught.value.record, caught.value.field) == ("line 3", "$.vulnerabilities")


def test_observed_at_given_by_the_user_wins_and_is_deterministic() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    result = normalize_file(OcsfConnector(), EVENTS, observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}
    assert normalize_file(OcsfConnector(), EVENTS) == normalize_file(OcsfConnector(), EVENTS)


@FUZZ
@given(data=mutated(PROWLER[0].read_bytes()))
def test_fuzz_prowler(data: bytes) -> None:
    only_input_errors(OcsfConnector(), data, "prowler.ocsf.json")


@FUZZ
@given(data=mutated(EVENTS.read_bytes()))
def test_fuzz_events(data: bytes) -> None:
    only_input_errors(OcsfConnector(), data, "events.ocsf.jsonl")
