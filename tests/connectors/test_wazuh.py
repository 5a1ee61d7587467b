"""Wazuh alerts, SCA and vulnerability connectors on the real samples and built fixtures."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from claimready.connectors.base import Normalized
from claimready.connectors.builtin import wazuh_alerts
from claimready.connectors.builtin.wazuh import (
    WazuhScaConnector,
    WazuhVulnerabilitiesConnector,
)
from claimready.connectors.builtin.wazuh_alerts import WazuhAlertsConnector
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

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "wazuh"
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "wazuh"
ALERTS = ASSETS / "alerts.json"
SCA = ASSETS / "sca-agent-002.json"
V47 = SAMPLES / "v4-7_many_findings.json"
V48 = SAMPLES / "v4-8_many_findings.json"


def _stamp(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else None


def _alerts() -> list[dict[str, Any]]:
    return [json.loads(line) for line in ALERTS.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        *((p, "wazuh-vulnerabilities") for p in sorted(SAMPLES.glob("*.json"))),
        (ALERTS, "wazuh-alerts"),
        (SCA, "wazuh-sca"),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_each_file_is_detected_as_its_own_kind(path: Path, kind: str) -> None:
    head = path.read_bytes()[:4096]
    assert detect_connector(name=path.name, head=head).kind == kind


def test_alerts_give_last_event_and_alerts_of_level_seven_and_up() -> None:
    alerts = _alerts()
    readable = [a for a in alerts if _stamp(a["timestamp"])]
    expected_alerts: dict[str, set[str]] = defaultdict(set)
    last: dict[str, datetime] = {}
    for alert in readable:
        agent, moment = alert["agent"]["id"], _stamp(alert["timestamp"])
        assert moment is not None
        last[agent] = max(last.get(agent, moment), moment)
        if alert["rule"]["level"] >= 7:
            expected_alerts[agent].add(f"{alert['rule']['id']}|{alert['rule']['level']}")
    result = normalize_file(WazuhAlertsConnector(), ALERTS)
    assert result.record_count == len(alerts)
    alerts_found = {k: set(v) for k, v in facts_by(result, "log.alert").items()}
    assert alerts_found == dict(expected_alerts)
    assert {k: v[0] for k, v in facts_by(result, "log.last_event").items()} == last
    kinds = {o.key: o.kind for o in result.observations}
    assert kinds["000"] == "server"
    assert {o.key for o in result.observations} == {a["agent"]["id"] for a in alerts}
    unreadable = [i + 1 for i, a in enumerate(alerts) if not _stamp(a["timestamp"])]
    assert [w.record for w in result.warnings] == [f"line {n}" for n in unreadable]


def test_sca_state_is_the_latest_summary_per_agent_and_policy() -> None:
    latest: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    for alert in _alerts():
        sca = alert.get("data", {}).get("sca", {})
        moment = _stamp(alert["timestamp"])
        if sca.get("type") == "summary" and moment:
            key = (alert["agent"]["id"], sca["policy_id"])
            if key not in latest or moment >= latest[key][0]:
                latest[key] = (moment, sca)
    result = normalize_file(WazuhAlertsConnector(), ALERTS)
    scores = facts_by(result, "sca.score")
    failed = facts_by(result, "sca.failed")
    for (agent, _policy), (_moment, sca) in latest.items():
        assert float(sca["score"]) in scores[agent]
        assert float(sca["failed"]) in failed[agent]
    assert sum(len(v) for v in scores.values()) == len(latest)


def test_alerts_stream_in_batches_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = normalize_file(WazuhAlertsConnector(), ALERTS)
    monkeypatch.setattr(wazuh_alerts, "BATCH_LINES", 2)
    from claimready.connectors.base import EvidenceFile

    evidence = EvidenceFile(ALERTS, ALERTS.name, ALERTS.stat().st_size)
    batches = list(
        WazuhAlertsConnector().normalize_batches(
            evidence, observed_at=None, collected_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
    )
    assert len(batches) > 3
    for batch in batches:
        assert {f.asset_key for f in batch.facts} <= {o.key for o in batch.observations}
    merged = normalize_file(WazuhAlertsConnector(), ALERTS)
    assert set(merged.facts) == set(whole.facts)
    assert merged.record_count == whole.record_count


def test_vulnerabilities_48_by_agent() -> None:
    hits = json.loads(V48.read_text())["hits"]["hits"]
    by_agent: dict[str, dict[str, str]] = defaultdict(dict)
    for hit in hits:
        source = hit["_source"]
        by_agent[source["agent"]["id"]][source["vulnerability"]["id"]] = source["vulnerability"][
            "severity"
        ].lower()
    result = normalize_file(WazuhVulnerabilitiesConnector(), V48)
    assert result.record_count == len(hits)
    cves = {k: set(v) for k, v in facts_by(result, "vuln.cve").items()}
    assert cves == {agent: set(found) for agent, found in by_agent.items()}
    critical = {k: v[0] for k, v in facts_by(result, "vuln.critical_open").items()}
    expected = {a: sum(s == "critical" for s in found.values()) for a, found in by_agent.items()}
    assert critical == expected
    assert all(f.observed_at == result.observed_to for f in result.facts)


def test_vulnerabilities_47_take_the_agent_from_the_file_name(tmp_path: Path) -> None:
    items = json.loads(V47.read_text())["data"]["affected_items"]
    named = tmp_path / "agent-017-vulnerabilities.json"
    shutil.copy(V47, named)
    result = normalize_file(WazuhVulnerabilitiesConnector(), named)
    assert [o.key for o in result.observations] == ["017"]
    severity: dict[str, str] = {}
    for item in items:
        severity[item["cve"].upper()] = item["severity"].lower()
    for name in ("critical", "high", "medium"):
        count = sum(value == name for value in severity.values())
        assert facts_by(result, f"vuln.{name}_open") == {"017": [count]}
    # Every CVE id in the sample is a placeholder (CVE-YYYY-...): warned, never emitted.
    assert not facts_by(result, "vuln.cve")
    assert len(result.warnings) == len(items)
    latest = max(datetime.fromisoformat(i["detection_time"]) for i in items)
    assert facts_by(result, "scan.last_scanned") == {"017": [latest]}


def test_vulnerabilities_47_without_an_agent_name_say_so() -> None:
    result = normalize_file(WazuhVulnerabilitiesConnector(), SAMPLES / "v4-7_one_finding.json")
    assert [o.key for o in result.observations] == ["unidentified"]
    assert facts_by(result, "vuln.cve") == {"unidentified": ["CVE-1234-123123"]}
    assert result.notes


def test_sca_api_results_per_policy() -> None:
    items = json.loads(SCA.read_text())["data"]["affected_items"]
    result = normalize_file(WazuhScaConnector(), SCA)
    readable = [i for i in items if _stamp(i["end_scan"])]
    assert sorted(facts_by(result, "sca.score")["002"]) == sorted(
        float(i["score"]) for i in readable
    )
    assert [w.field for w in result.warnings] == ["end_scan"] * (len(items) - len(readable))


def test_observed_at_given_by_the_user_wins() -> None:
    moment = datetime(2024, 6, 1, tzinfo=UTC)
    for connector, path in (
        (WazuhAlertsConnector(), ALERTS),
        (WazuhVulnerabilitiesConnector(), V48),
        (WazuhScaConnector(), SCA),
    ):
        result = normalize_file(connector, path, observed_at=moment)
        assert {f.observed_at for f in result.facts} == {moment}
        assert result.observed_to == moment


@pytest.mark.parametrize(
    ("text", "record", "field"),
    [
        (
            '{"timestamp": "2025-01-01T00:00:00Z", "rule": {"level": 3, "id": "1"}}\n',
            "line 1",
            "agent",
        ),
        ('{"timestamp": 5, "rule": {}, "agent": {}}\n', "line 1", "timestamp"),
        (
            '{"timestamp": "2025-01-01T00:00:00Z", "rule": {"level": "x", "id": "1"}, '
            '"agent": {"id": "001"}}\n',
            "line 1",
            "rule.level",
        ),
        ("[]\n", "line 1", None),
    ],
)
def test_alert_shapes_name_line_and_field(
    tmp_path: Path, text: str, record: str, field: str | None
) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(text)
    with raises_input_error(file="alerts.json", record=record, field=field):
        normalize_file(WazuhAlertsConnector(), path)


def test_vulnerability_shapes_name_record_and_field(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"hits": {"hits": [{"_source": {"agent": {"id": "001"}}}]}}))
    with pytest.raises(InputError, match="missing") as caught:
        normalize_file(WazuhVulnerabilitiesConnector(), path)
    assert (caught.value.record, caught.value.field) == (0, "_source.vulnerability")


def test_normalize_is_deterministic() -> None:
    for connector, path in (
        (WazuhAlertsConnector(), ALERTS),
        (WazuhVulnerabilitiesConnector(), V48),
    ):
        assert normalize_file(connector, path) == normalize_file(connector, path)


@FUZZ
@given(data=mutated(ALERTS.read_bytes()))
def test_fuzz_alerts(data: bytes) -> None:
    only_input_errors(WazuhAlertsConnector(), data, "alerts.json")


@FUZZ
@given(data=mutated(V48.read_bytes()))
def test_fuzz_vulnerabilities_48(data: bytes) -> None:
    only_input_errors(WazuhVulnerabilitiesConnector(), data, "v48.json")


@FUZZ
@given(data=mutated(V47.read_bytes()))
def test_fuzz_vulnerabilities_47(data: bytes) -> None:
    only_input_errors(WazuhVulnerabilitiesConnector(), data, "agent-001.json")


@FUZZ
@given(data=mutated(SCA.read_bytes()))
def test_fuzz_sca(data: bytes) -> None:
    only_input_errors(WazuhScaConnector(), data, "agent-002.json")


def _checked_only(path: Path) -> Normalized:
    """Normalize with the typed block decoder off: every line through the checked path."""
    with mock.patch.object(wazuh_alerts, "decode_each", lambda decoder, block: None):
        return normalize_file(WazuhAlertsConnector(), path)


def test_odd_alerts_in_a_block_give_the_same_result_as_alone(tmp_path: Path) -> None:
    alerts = _alerts()
    odd = [dict(alerts[0]), dict(alerts[1]), dict(alerts[2])]
    odd[0]["agent"] = {**odd[0]["agent"], "id": 7}  # a number: read through the checked path
    odd[1]["timestamp"] = "2024-05-01T12:00:00+0200"  # an offset other than UTC
    odd[2]["rule"] = {**odd[2]["rule"], "level": 99}
    mixed = [*alerts[3:], *odd]
    path = tmp_path / "alerts.json"
    path.write_text("".join(json.dumps(a) + "\n" for a in mixed))
    together = normalize_file(WazuhAlertsConnector(), path)
    assert _checked_only(path) == together
    assert together.record_count == len(mixed)
    assert "7" in facts_by(together, "log.last_event")


_SCA_SUMMARY = {"sca": {"type": "summary", "policy_id": "cis", "score": "50", "failed": "3"}}
# Per field: the values of a plain alert, then odd ones (other types, out of range, unreadable).
_FIELDS: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "timestamp": (
        ("2024-05-01T10:00:00.123+0000", "2024-05-01T10:00:01.500+0000"),
        ("2024-05-01T12:00:00+0200", "2024-05-01T10:00:00", "not a time", 5),
    ),
    "level": ((3, 7, 12, 15), (0, 16, 7.0, 7.5, -1, 1e999, True, "7")),
    "rule": (("5712", "550"), (5712, "")),
    "agent": (("001", "002", "000"), (7, " ", "")),
    "name": (("ws-1", "ws-2", None), (3,)),
    "data": ((None, {"srcip": "10.0.0.1"}), (_SCA_SUMMARY, "text")),
}


def _field(draw: st.DrawFn, name: str) -> Any:
    usual, odd = _FIELDS[name]
    return draw(st.sampled_from(odd if draw(st.integers(0, 19)) == 0 else usual))


@st.composite
def _odd_alert_lines(draw: st.DrawFn) -> str:
    """One line: an alert whose fields are mostly of the usual types, or a blank line."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["", "  ", "\r"]))
    alert: dict[str, Any] = {
        "timestamp": _field(draw, "timestamp"),
        "rule": {"level": _field(draw, "level"), "id": _field(draw, "rule")},
        "agent": {"id": _field(draw, "agent"), "name": _field(draw, "name")},
        "manager": {"name": "m"},
    }
    data = _field(draw, "data")
    if data is not None:
        alert["data"] = data
    return json.dumps(alert)


_BLANK_RULE = (
    '{"timestamp": "2024-05-01T10:00:00.123+0000", "rule": {"level": 3, "id": " "}, '
    '"agent": {"id": "001"}, "manager": {"name": "m"}}'
)


@settings(FUZZ, max_examples=200)
@given(lines=st.lists(_odd_alert_lines(), min_size=1, max_size=30))
@example(lines=[_BLANK_RULE])
def test_the_typed_path_gives_what_the_checked_path_gives(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "alerts.json"
        path.write_text("\n".join(lines) + "\n")
        outcomes: list[object] = []
        for normalize in (partial(normalize_file, WazuhAlertsConnector()), _checked_only):
            try:
                outcomes.append(normalize(path))
            except InputError as exc:
                outcomes.append((str(exc), exc.record, exc.field))
    assert outcomes[0] == outcomes[1]


def test_an_infinite_level_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    line = json.dumps(_alerts()[0]).replace('"level": ', '"level": 1e999, "old_level": ')
    path.write_text(line + "\n")
    with pytest.raises(InputError, match="finite") as caught:
        normalize_file(WazuhAlertsConnector(), path)
    assert (caught.value.record, caught.value.field) == ("line 1", "rule.level")
