"""The SARIF connector on the real logs (suppressions, baselines, rule ids) and on mutations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin.sarif import SarifConnector, is_suppressed
from claimready.connectors.registry import detect_connector
from tests.connectors.helpers import input_error_from, raises_input_error

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "sarif"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _normalize(path: Path, observed_at: datetime | None = None) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return SarifConnector().normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def _values(result: Normalized, signal: str) -> list[Any]:
    return [f.value for f in result.facts if f.signal == signal]


def _open(result: dict[str, Any]) -> bool:
    """Independent reading of the spec: hidden only by an accepted suppression nobody disputes."""
    statuses = [s.get("status", "accepted") for s in result.get("suppressions") or []]
    suppressed = "accepted" in statuses and not {"underReview", "rejected"} & set(statuses)
    not_finding = result.get("kind", "fail") in ("pass", "notApplicable", "informational")
    return not suppressed and not not_finding and result.get("baselineState") != "absent"


def _level(result: dict[str, Any], rules: list[dict[str, Any]]) -> str:
    if "level" in result:
        level: str = result["level"]
        return level
    rule = next((r for r in rules if r.get("id") == result.get("ruleId")), {})
    default: str = rule.get("defaultConfiguration", {}).get("level", "warning")
    return default


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.sarif")), ids=lambda p: p.name)
def test_sample_findings_match_the_log(path: Path) -> None:
    log = json.loads(path.read_text())
    expected: list[str] = []
    for run in log["runs"]:
        rules = run["tool"]["driver"].get("rules", [])
        for result in run.get("results", []):
            if _open(result):
                expected.append(f"{result.get('ruleId', 'unknown')}|{_level(result, rules)}")
    result = _normalize(path)
    assert result.record_count == sum(len(run.get("results", [])) for run in log["runs"])
    assert sorted(_values(result, "vuln.finding")) == sorted(expected)
    if log["runs"]:
        assert _values(result, "vuln.high_open") == [sum(e.endswith("|error") for e in expected)]
        assert _values(result, "vuln.medium_open") == [
            sum(e.endswith("|warning") for e in expected)
        ]
    assert all(o.kind == "application" for o in result.observations)


def test_suppression_samples() -> None:
    assert _values(_normalize(SAMPLES / "suppression_test.sarif"), "vuln.finding") == [
        "TST0004|warning",
        "TST0005|warning",
    ]
    # Visible: no suppression, rejected, under review, and every disputed suppression.
    assert len(_values(_normalize(SAMPLES / "tutorial-Suppressions.sarif"), "vuln.finding")) == 6
    assert is_suppressed([{"kind": "inSource"}])
    assert not is_suppressed([])
    assert not is_suppressed([{"kind": "external", "status": "underReview"}])


def test_repository_is_the_application_and_end_time_is_the_scan_time() -> None:
    result = _normalize(SAMPLES / "appendix_k.sarif")
    (app,) = result.observations
    assert app.display_name == "https://github.com/example-corp/browser"
    assert _values(result, "scan.last_scanned") == [datetime(2016, 7, 16, 14, 19, 1, tzinfo=UTC)]
    assert _values(result, "vuln.finding") == []  # its one result is suppressed


def test_rule_ids_that_are_cves_and_missing_rule_ids() -> None:
    deps = _normalize(SAMPLES / "dependency_check.sarif")
    log = json.loads((SAMPLES / "dependency_check.sarif").read_text())
    cves = {r["ruleId"] for r in log["runs"][0]["results"] if r["ruleId"].startswith("CVE-")}
    assert set(_values(deps, "vuln.cve")) == cves
    leaks = _normalize(SAMPLES / "gitleaks_7.5.0.sarif")
    assert {w.field for w in leaks.warnings} == {"ruleId"}
    assert leaks.notes  # no end time: described as the collection time


def test_no_runs_and_detection() -> None:
    empty = _normalize(SAMPLES / "no_runs.sarif")
    assert empty.facts == () and empty.observations == ()
    for path in SAMPLES.glob("*.sarif"):
        head = path.read_bytes()[:4096]
        assert detect_connector(name=path.name, head=head).kind == "sarif"


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "scan.sarif"
    path.write_text(json.dumps(document))
    return path


def _log(results: Any, **run: Any) -> dict[str, Any]:
    return {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "T"}}, "results": results, **run}],
    }


@pytest.mark.parametrize(
    ("document", "record", "field", "message"),
    [
        ([], None, None, "expected a SARIF log object"),
        ({"version": "2.0.0", "runs": []}, None, "version", "expected version"),
        ({"version": "2.1.0"}, None, "runs", "missing"),
        (
            {"version": "2.1.0", "runs": [{"tool": {}}]},
            "run 0",
            "tool.driver",
            "expected an object",
        ),
        (
            {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]},
            "run 0",
            "tool.driver.name",
            "missing",
        ),
        (_log([{"ruleId": "a"}, 5]), "run 0 result 1", None, "expected an object"),
        (_log({}), "run 0", "results", "expected an array"),
    ],
)
def test_malformed_logs_name_file_record_and_field(
    tmp_path: Path, document: Any, record: object, field: str | None, message: str
) -> None:
    path = _write(tmp_path, document)
    with raises_input_error(file=path.name, record=record, field=field, match=message):
        _normalize(path)


def test_unreadable_level_and_time_are_warnings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _log(
            [{"ruleId": "a", "level": "severe"}, {"ruleId": "b", "kind": []}],
            invocations=[{"endTimeUtc": "later"}],
        ),
    )
    result = _normalize(path)
    assert sorted(w.field for w in result.warnings) == ["invocations[0].endTimeUtc", "level"]
    assert _values(result, "vuln.high_open") == []
    assert _values(result, "scan.last_scanned") == []


_SWAPS: list[Any] = [None, 0, 1.5, True, "", "x", [], {}]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*prefix, index)))
    return found


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(sorted(SAMPLES.glob("*.sarif"))))
    if draw(st.booleans()):
        document = json.loads(path.read_text())
        where = draw(st.sampled_from(_paths(document) or [()]))
        if where:
            parent = document
            for step in where[:-1]:
                parent = parent[step]
            parent[where[-1]] = draw(st.sampled_from(_SWAPS))
        return json.dumps(document).encode()
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated())
def test_mutated_logs_only_ever_raise_input_error(data: bytes) -> None:
    error = input_error_from(_normalize, data, "fuzz.sarif")
    assert error is None or error.file == "fuzz.sarif"
