"""The Nuclei connector on the real samples (JSON lines and JSON array) and mutated input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin.nuclei import NucleiConnector, target_host
from claimready.connectors.registry import detect_connector
from claimready.errors import InputError
from claimready.timeutil import parse_utc
from tests.connectors.helpers import input_error_from, raises_input_error

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "nuclei"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _normalize(path: Path, observed_at: datetime | None = None) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return NucleiConnector().normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def _values(result: Normalized, signal: str, key: str | None = None) -> list[Any]:
    return [f.value for f in result.facts if f.signal == signal and key in (None, f.asset_key)]


def _load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        records: list[dict[str, Any]] = json.loads(text)
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _host(raw: dict[str, Any]) -> str:
    host: str = raw["host"]
    return (urlsplit(host).hostname or "") if "://" in host else host.split(":")[0]


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_sample_findings_match_the_file(path: Path) -> None:
    records = _load(path)
    result = _normalize(path)
    assert result.record_count == len(records)
    hosts = {_host(r) for r in records}
    assert {o.key for o in result.observations} == hosts
    for host in hosts:
        mine = [r for r in records if _host(r) == host]
        open_ = [r for r in mine if r["info"]["severity"] != "info"]
        template = [r.get("template-id") or r.get("templateID") for r in open_]
        want = sorted(f"{t}|{r['info']['severity']}" for t, r in zip(template, open_, strict=True))
        assert sorted(_values(result, "vuln.finding", host)) == want
        for word in ("critical", "high", "medium"):
            count = sum(r["info"]["severity"] == word for r in open_)
            assert _values(result, f"vuln.{word}_open", host) == [count]
        latest = max(parse_utc(r["timestamp"]) for r in mine)
        assert _values(result, "scan.last_scanned", host) == [latest]
        cves = {
            c
            for r in open_
            for c in [(r["info"].get("classification") or {}).get("cve-id")]
            if isinstance(c, str)
        }
        assert set(_values(result, "vuln.cve", host)) == cves
    assert not result.warnings


def test_detected_as_nuclei_and_nothing_else() -> None:
    for path in SAMPLES.glob("*.json"):
        head = path.read_bytes()[:4096]
        assert detect_connector(name=path.name, head=head).kind == "nuclei"


def test_targets_and_addresses() -> None:
    assert target_host("https://Web.Example.com:8443/x") == "web.example.com"
    assert target_host("db.example.com:3306") == "db.example.com"
    assert target_host("[2001:db8::1]:443") == "2001:db8::1"
    result = _normalize(SAMPLES / "many_findings.json")
    local = next(o for o in result.observations if o.key == "127.0.0.1")
    assert local.identifiers == ()


def _finding(**overrides: Any) -> dict[str, Any]:
    finding: dict[str, Any] = {
        "template-id": "CVE-2021-44228",
        "info": {
            "severity": "critical",
            "classification": {"cve-id": ["CVE-2021-44228"], "cvss-score": 10.0},
        },
        "host": "https://app.example.com",
        "matched-at": "https://app.example.com/login",
        "timestamp": "2024-03-01T10:00:00+01:00",
    }
    finding.update(overrides)
    return finding


def _write(tmp_path: Path, records: list[Any]) -> Path:
    path = tmp_path / "nuclei.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_cves_scores_and_unreadable_values(tmp_path: Path) -> None:
    path = _write(tmp_path, [_finding(), _finding(timestamp="yesterday", info={"severity": "odd"})])
    result = _normalize(path)
    assert _values(result, "vuln.cve") == ["CVE-2021-44228"]
    assert _values(result, "vuln.max_cvss") == [10.0]
    assert _values(result, "vuln.critical_open") == []  # one severity was unreadable
    assert sorted(w.field for w in result.warnings) == ["info.severity", "timestamp"]
    assert _values(result, "scan.last_scanned") == [datetime(2024, 3, 1, 9, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("records", "record", "field", "message"),
    [
        ([_finding(), 3], "line 2", None, "expected an object"),
        ([{"host": "x", "info": {}}], "line 1", "template-id", "missing"),
        ([_finding(host=5)], "line 1", "host", "expected text"),
        ([_finding(info=[])], "line 1 (template CVE-2021-44228)", "info", "expected an object"),
    ],
)
def test_malformed_findings_name_file_record_and_field(
    tmp_path: Path, records: list[Any], record: object, field: str | None, message: str
) -> None:
    path = _write(tmp_path, records)
    with raises_input_error(file=path.name, record=record, field=field, match=message):
        _normalize(path)


def test_broken_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "nuclei.jsonl"
    path.write_text(json.dumps(_finding()) + "\n{broken\n")
    with pytest.raises(InputError, match="not valid JSON") as caught:
        _normalize(path)
    assert caught.value.file == "nuclei.jsonl line 2"


_SWAPS: list[Any] = [None, 0, 1.5, True, "", "x", [], {}]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(sorted(SAMPLES.glob("*.json"))))
    if draw(st.booleans()):
        records = _load(path)
        record = records[draw(st.integers(0, len(records) - 1))]
        target = record if draw(st.booleans()) else record.get("info", {})
        if target:
            key = draw(st.sampled_from(sorted(target)))
            target[key] = draw(st.sampled_from(_SWAPS))
        return "\n".join(json.dumps(r) for r in records).encode()
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated())
def test_mutated_findings_only_ever_raise_input_error(data: bytes) -> None:
    error = input_error_from(_normalize, data, "fuzz.json")
    assert error is None or (error.file is not None and error.file.startswith("fuzz.json"))
