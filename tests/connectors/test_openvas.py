"""The Greenbone / OpenVAS connector on the real samples, crafted reports and mutated bytes."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin.openvas import OpenVasConnector, severity_word
from claimready.connectors.registry import detect_connector
from claimready.timeutil import parse_utc
from tests.connectors.helpers import flipped_bytes, input_error_from, raises_input_error

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "openvas"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _normalize(path: Path, observed_at: datetime | None = None) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return OpenVasConnector().normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def _values(result: Normalized, signal: str, key: str | None = None) -> list[Any]:
    return [f.value for f in result.facts if f.signal == signal and key in (None, f.asset_key)]


def _word(score: float) -> str:
    return "critical" if score >= 9 else "high" if score >= 7 else "medium" if score >= 4 else "low"


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_sample_results_match_the_report(path: Path) -> None:
    root = ET.parse(path).getroot()  # noqa: S314 - trusted sample
    results = root.findall("./report/results/result")
    result = _normalize(path)
    assert result.record_count == len(results)
    hosts = {(r.findtext("host") or "").strip() for r in results}
    assert {o.key for o in result.observations} == hosts
    for host in hosts:
        mine = [r for r in results if (r.findtext("host") or "").strip() == host]
        scores = [float(r.findtext("severity") or "0") for r in mine]
        open_ = [(r, s) for r, s in zip(mine, scores, strict=True) if s > 0]
        findings = sorted(f"{r.find('nvt').get('oid')}|{_word(s)}" for r, s in open_)  # type: ignore[union-attr]
        assert sorted(_values(result, "vuln.finding", host)) == findings
        assert _values(result, "vuln.critical_open", host) == [sum(s >= 9 for _, s in open_)]
        assert _values(result, "vuln.high_open", host) == [sum(7 <= s < 9 for _, s in open_)]
        assert _values(result, "vuln.medium_open", host) == [sum(4 <= s < 7 for _, s in open_)]
        assert _values(result, "vuln.max_cvss", host) == [max(scores)]
        cves = {
            ref.get("id", "") for r, _ in open_ for ref in r.iter("ref") if ref.get("type") == "cve"
        }
        assert sorted(_values(result, "vuln.cve", host)) == sorted(cves)
        summary = next(h for h in root.findall("./report/host") if h.findtext("ip") == host)
        assert _values(result, "scan.last_scanned", host) == [
            parse_utc(summary.findtext("end") or "")
        ]
        ports = {(r.findtext("port") or "").split("/")[0] for r in mine}
        # The samples were exported with levels=hml: exposure is only ever reported when found.
        assert _values(result, "exposure.smb", host) == ([True] if "445" in ports else [])
        assert _values(result, "exposure.rdp", host) == ([True] if "3389" in ports else [])
        try:
            public = [not ipaddress.ip_address(host).is_private]
        except ValueError:  # one sample's host is "192.168.1.1001", not an address
            public = []
        assert _values(result, "exposure.internet", host) == public
    assert not result.warnings


def test_hostnames_become_identifiers_addresses_never() -> None:
    many = _normalize(SAMPLES / "many_vuln.xml")
    (observation,) = many.observations
    assert {(i.kind, i.value) for i in observation.identifiers} == {("hostname", "b6b9f466d63")}
    one = _normalize(SAMPLES / "one_vuln.xml")
    assert one.observations[0].identifiers == ()
    assert any("known only by address" in note for note in one.notes)


def test_empty_report_and_observed_at() -> None:
    empty = _normalize(SAMPLES / "no_vuln.xml")
    assert empty.facts == ()
    assert any("no hosts" in note for note in empty.notes)
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    result = _normalize(SAMPLES / "one_vuln.xml", observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}


def test_detected_as_openvas_and_nothing_else() -> None:
    for path in SAMPLES.glob("*.xml"):
        head = path.read_bytes()[:4096]
        assert detect_connector(name=path.name, head=head).kind == "openvas"


def _report(results: str, hosts: str = "", levels: str = "hml") -> str:
    return (
        '<report id="r" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5"><report id="i">'
        f"<gmp><version>9.0</version></gmp><filters><term>levels={levels}</term></filters>"
        f"<results>{results}</results>{hosts}<scan_end>2024-01-01T00:00:00Z</scan_end>"
        "</report></report>"
    )


def _result(
    host: str = "10.0.0.1", severity: str = "5.0", oid: str = "1.2", port: str = "80/tcp"
) -> str:
    return (
        f'<result id="x"><host>{host}<hostname>web</hostname></host><port>{port}</port>'
        f'<nvt oid="{oid}"><cve>CVE-2020-0001, CVE-2020-0002</cve></nvt>'
        f"<severity>{severity}</severity><threat/></result>"
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "report.xml"
    path.write_text(text)
    return path


def test_complete_reports_give_negative_exposure_and_legacy_cves(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _report(_result() + _result(port="3389/tcp", severity="0"), levels="hmlg")
    )
    result = _normalize(path)
    assert _values(result, "exposure.rdp") == [True]
    assert _values(result, "exposure.smb") == [False]
    assert sorted(_values(result, "vuln.cve")) == ["CVE-2020-0001", "CVE-2020-0002"]
    assert _values(result, "scan.last_scanned") == [datetime(2024, 1, 1, tzinfo=UTC)]


def test_unreadable_severity_is_a_warning(tmp_path: Path) -> None:
    result = _normalize(_write(tmp_path, _report(_result(severity="bad"))))
    assert [w.field for w in result.warnings] == ["severity"]
    assert _values(result, "vuln.high_open") == []
    assert _values(result, "vuln.max_cvss") == []


@pytest.mark.parametrize(
    ("text", "record", "field", "message"),
    [
        ("<nmaprun/>", None, None, "not a Greenbone report"),
        (_report(_result(host="")), "0 (id x)", "host", "no host"),
        (_report(_result(oid="")), "0 (id x)", "nvt", "no NVT oid"),
        (_report("<result"), None, None, "not well-formed"),
    ],
)
def test_malformed_reports_name_file_record_and_field(
    tmp_path: Path, text: str, record: object, field: str | None, message: str
) -> None:
    path = _write(tmp_path, text)
    with raises_input_error(file=path.name, record=record, field=field, match=message):
        _normalize(path)


def test_severity_words() -> None:
    assert [severity_word(s) for s in (10, 9.0, 8.9, 7, 6.9, 4, 3.9, 0.1, 0, -1)] == [
        "critical", "critical", "high", "high", "medium", "medium", "low", "low", "info", None,
    ]  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=flipped_bytes((SAMPLES / "one_vuln.xml").read_bytes()))
def test_mutated_reports_only_ever_raise_input_error(data: bytes) -> None:
    error = input_error_from(_normalize, data, "fuzz.xml")
    assert error is None or error.file == "fuzz.xml"
