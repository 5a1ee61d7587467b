"""The Nessus v2 connector on the real samples, on crafted reports and on mutated bytes."""

from __future__ import annotations

import ipaddress
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.connectors import xmlsplit
from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin import nessus
from claimready.connectors.builtin.nessus import NessusConnector, parse_nessus_time
from claimready.connectors.registry import detect_connector
from claimready.errors import InputError
from tests.connectors.helpers import flipped_bytes, input_error_from, raises_input_error

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "nessus"
CVSS3 = SAMPLES / "nessus_with_cvssv3.nessus"
MANY = SAMPLES / "nessus_many_vuln.nessus"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WORDS = {1: "low", 2: "medium", 3: "high", 4: "critical"}


def _normalize(path: Path, observed_at: datetime | None = None, **kwargs: Any) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    connector = NessusConnector(**kwargs)
    return connector.normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def _values(result: Normalized, signal: str, key: str | None = None) -> list[Any]:
    return [f.value for f in result.facts if f.signal == signal and key in (None, f.asset_key)]


def _expected(path: Path) -> dict[str, dict[str, Any]]:
    """Per host, what the report says, read with the standard library."""
    expected: dict[str, dict[str, Any]] = {}
    for host in ET.parse(path).getroot().iter("ReportHost"):  # noqa: S314 - trusted sample
        items = [i for i in host.iter("ReportItem") if int(i.get("severity", "0")) >= 1]
        scores = [
            float(i.findtext("cvss3_base_score") or i.findtext("cvss_base_score") or "nan")
            for i in items
        ]
        expected[host.get("name", "")] = {
            "findings": sorted(
                f"{i.get('pluginID')}|{WORDS[int(i.get('severity', '0'))]}" for i in items
            ),
            "cves": sorted({c.text.strip() for i in items for c in i.iter("cve") if c.text}),
            "critical": sum(i.get("severity") == "4" for i in items),
            "high": sum(i.get("severity") == "3" for i in items),
            "medium": sum(i.get("severity") == "2" for i in items),
            "max": max((s for s in scores if s == s), default=0.0),
            "ports": {i.get("port") for i in host.iter("ReportItem")},
            "address": host.findtext("HostProperties/tag[@name='host-ip']") or host.get("name"),
        }
    return expected


@pytest.mark.parametrize("path", [CVSS3, MANY], ids=lambda p: p.name)
def test_sample_findings_match_the_report(path: Path) -> None:
    expected = _expected(path)
    result = _normalize(path)
    assert result.record_count == len(expected)
    assert {o.key for o in result.observations} == set(expected)
    for key, want in expected.items():
        assert sorted(_values(result, "vuln.finding", key)) == want["findings"]
        assert sorted(_values(result, "vuln.cve", key)) == want["cves"]
        assert _values(result, "vuln.critical_open", key) == [want["critical"]]
        assert _values(result, "vuln.high_open", key) == [want["high"]]
        assert _values(result, "vuln.medium_open", key) == [want["medium"]]
        assert _values(result, "vuln.max_cvss", key) == [want["max"]]
        assert _values(result, "exposure.rdp", key) == ["3389" in want["ports"]]
        assert _values(result, "exposure.smb", key) == ["445" in want["ports"]]
        public = not ipaddress.ip_address(want["address"]).is_private
        assert _values(result, "exposure.internet", key) == [public]
    assert not result.warnings


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", False),
        ("172.31.0.9", False),
        ("192.168.1.20", False),
        ("100.64.3.4", False),  # shared address space (carrier-grade NAT)
        ("127.0.0.1", False),
        ("169.254.10.1", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("::ffff:10.0.0.7", False),
        ("[fe80::2]", False),
        ("44.228.249.3", True),
        ("203.0.113.20", True),  # documentation ranges stand for public addresses
        ("2001:db8::5", True),
        ("2a00:1450:4001::1", True),
        ("ws-12.corp.example.com", None),
    ],
)
def test_internet_facing_addresses(address: str, public: bool | None) -> None:
    assert nessus.internet_facing(address) is public


def test_scan_end_prefers_the_exact_timestamp() -> None:
    root = ET.parse(CVSS3).getroot()  # noqa: S314 - trusted sample
    stamp = int(root.findtext(".//tag[@name='HOST_END_TIMESTAMP']") or "0")
    result = _normalize(CVSS3)
    moment = datetime.fromtimestamp(stamp, UTC)
    assert _values(result, "scan.last_scanned") == [moment]
    assert {f.observed_at for f in result.facts} == {moment}
    assert result.observed_to == moment
    assert not result.notes


def test_zoneless_host_end_is_read_as_utc_and_said_so() -> None:
    root = ET.parse(MANY).getroot()  # noqa: S314 - trusted sample
    text = root.findtext(".//tag[@name='HOST_END']") or ""
    result = _normalize(MANY)
    assert _values(result, "scan.last_scanned") == [parse_nessus_time(text)]
    assert any("local time" in note for note in result.notes)


def test_observed_at_given_by_the_user_wins() -> None:
    moment = datetime(2024, 1, 2, tzinfo=UTC)
    result = _normalize(CVSS3, observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}
    assert result.observed_to == moment


def test_detected_as_nessus_and_nothing_else() -> None:
    for path in SAMPLES.glob("*.nessus"):
        head = path.read_bytes()[:4096]
        assert detect_connector(name=path.name, head=head).kind == "nessus"


def _report(hosts: str) -> str:
    body = f'<Report name="r">{hosts}</Report>'
    return f'<?xml version="1.0" ?>\n<NessusClientData_v2>{body}</NessusClientData_v2>'


def _host(name: str, tags: str = "", items: str = "") -> str:
    return f'<ReportHost name="{name}"><HostProperties>{tags}</HostProperties>{items}</ReportHost>'


def _item(
    plugin: str = "1", severity: str = "3", port: str = "80", svc: str = "www", body: str = ""
) -> str:
    return (
        f'<ReportItem port="{port}" svc_name="{svc}" protocol="tcp" severity="{severity}" '
        f'pluginID="{plugin}" pluginName="x" pluginFamily="y">{body}</ReportItem>'
    )


def _write(tmp_path: Path, text: str, name: str = "scan.nessus") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hosts_identities_and_exposure(tmp_path: Path) -> None:
    tags = (
        '<tag name="HOST_END_TIMESTAMP">1700000000</tag>'
        '<tag name="host-fqdn">WS-12.corp.example.com</tag>'
        '<tag name="netbios-name">WS-12</tag>'
        '<tag name="mac-address">00:11:22:33:44:55\n00:00:00:00:00:00</tag>'
        '<tag name="bios-uuid">ABCD-1</tag>'
        '<tag name="operating-system">Microsoft Windows Server 2019</tag>'
    )
    items = _item("10", "0", port="3389", svc="msrdp") + _item("11", "0", port="139", svc="cifs")
    path = _write(
        tmp_path, _report(_host("10.0.0.5", tags, items) + _host("10.0.0.6", "", _item()))
    )
    result = _normalize(path)
    first, second = result.observations
    assert first.kind == "server"
    assert first.display_name == "WS-12.corp.example.com"
    values = {(i.kind, i.value) for i in first.identifiers}
    assert ("fqdn", "ws-12.corp.example.com") in values
    assert ("hostname", "ws-12") in values
    assert ("mac", "00:11:22:33:44:55") in values
    assert ("source_id", "smbios:abcd-1") in values
    assert not any("10.0.0.5" in value for _, value in values)
    assert second.identifiers == ()
    assert _values(result, "exposure.rdp", first.key) == [True]
    assert _values(result, "exposure.smb", first.key) == [True]
    assert _values(result, "exposure.internet") == [False, False]  # both scanned at 10.0.0.x
    assert _values(result, "vuln.finding", first.key) == []
    assert _values(result, "vuln.max_cvss", first.key) == [0.0]
    # The second host has no time: its facts describe the collection time, with a note.
    assert {f.observed_at for f in result.facts if f.asset_key == second.key} == {COLLECTED}
    assert _values(result, "scan.last_scanned", second.key) == []
    assert [w.field for w in result.warnings] == ["HOST_END"]
    assert any("collection time" in note for note in result.notes)


def test_unreadable_values_are_warnings_and_leave_facts_out(tmp_path: Path) -> None:
    tags = '<tag name="HOST_END">Someday soon</tag>'
    items = _item("1", "4", body="<cvss3_base_score>ten</cvss3_base_score>") + _item(
        "2", "2", port="x"
    )
    path = _write(tmp_path, _report(_host("a.example.com", tags, items)))
    result = _normalize(path)
    assert {w.field for w in result.warnings} == {"HOST_END", "cvss3_base_score", "port"}
    assert _values(result, "vuln.max_cvss") == []
    assert _values(result, "exposure.rdp") == []
    assert _values(result, "exposure.internet") == []  # scanned by name, no host-ip
    assert _values(result, "scan.last_scanned") == []
    assert _values(result, "vuln.critical_open") == [1]


@pytest.mark.parametrize(
    ("text", "record", "field", "message"),
    [
        ("<other/>", None, None, "not a Nessus v2 report"),
        (_report("<ReportHost><HostProperties/></ReportHost>"), 0, "name", "no name"),
        (_report(_host("h", "", _item(plugin=""))), "0 (host h) item 0", "pluginID", "missing"),
        (
            _report(_host("h", "", _item() + _item(severity="7"))),
            "0 (host h) item 1 (plugin 1)",
            "severity",
            "expected a severity 0-4",
        ),
        (_report(_host("h")).replace("</Report>", ""), None, None, "not well-formed"),
        ("", None, None, "not well-formed"),
    ],
)
def test_malformed_reports_name_file_record_and_field(
    tmp_path: Path, text: str, record: object, field: str | None, message: str
) -> None:
    path = _write(tmp_path, text)
    with raises_input_error(file=path.name, record=record, field=field, match=message):
        _normalize(path)


def test_batches_are_bounded_and_merge_to_normalize(tmp_path: Path) -> None:
    source = CVSS3.read_text()
    start = source.index("<ReportHost")
    end = source.index("</ReportHost>") + len("</ReportHost>")
    host = source[start:end]
    hosts = "".join(
        host.replace('name="testphp.vulnweb.com"', f'name="h{n}.example.com"', 1) for n in range(7)
    )
    path = _write(tmp_path, source[:start] + hosts + source[end:])
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    connector = NessusConnector(batch_hosts=3)
    batches = list(connector.normalize_batches(evidence, observed_at=None, collected_at=COLLECTED))
    assert [b.record_count for b in batches] == [3, 3, 1]
    merged = _normalize(path, batch_hosts=3)
    assert merged.facts == tuple(f for b in batches for f in b.facts)
    assert merged == _normalize(path, batch_hosts=1000)
    assert len(merged.observations) == 7


def test_normalize_is_deterministic() -> None:
    assert _normalize(CVSS3) == _normalize(CVSS3)


def test_nessus_time_parser() -> None:
    assert parse_nessus_time("Thu Jan 12 10:20:30 2023") == datetime(
        2023, 1, 12, 10, 20, 30, tzinfo=UTC
    )
    for bad in (
        "",
        "Thu Foo 12 10:20:30 2023",
        "Thu Jan 12 10:20 2023",
        "Thu Jan 40 10:20:30 2023",
    ):
        with pytest.raises(ValueError):
            parse_nessus_time(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=flipped_bytes(CVSS3.read_bytes()))
def test_mutated_reports_only_ever_raise_input_error(data: bytes) -> None:
    error = input_error_from(_normalize, data, "fuzz.nessus")
    assert error is None or error.file == "fuzz.nessus"


# Reading a report in two processes --------------------------------------------------------

_SPLIT_HOSTS = 6
_SNIPPETS = (
    b'<!-- <ReportHost name="fake"> -->',
    b'</Report><Report name="second">',
    b'<ReportHost name="inserted">',
    b"&bogus;",
    b"<!DOCTYPE x>",
    b'<ReportItem pluginID="9" severity="4" port="445"/>',
)


def _split_base() -> bytes:
    tags = (
        '<tag name="HOST_END_TIMESTAMP">1700000000</tag><tag name="host-fqdn">{n}.corp</tag>'
        '<tag name="operating-system">Windows Server 2019</tag>'
    )
    items = _item(body="<cve>CVE-2024-1</cve><cvss3_base_score>9.8</cvss3_base_score>") + _item(
        plugin="2", severity="2", port="3389", body="<cvss_base_score>5.0</cvss_base_score>"
    )
    hosts = "".join(_host(f"h{n}.corp", tags.format(n=f"h{n}"), items) for n in range(_SPLIT_HOSTS))
    return _report(hosts).encode()


@contextmanager
def _always_split() -> Iterator[None]:
    """Split reports of any size, whatever the machine (the split itself is what is tested)."""
    with (
        mock.patch.object(nessus, "PARALLEL_MIN_BYTES", 0),
        mock.patch.object(xmlsplit, "can_fork", lambda: True),
    ):
        yield


def _outcome(path: Path, *, parallel: bool) -> object:
    try:
        return _normalize(path, batch_hosts=2, parallel=parallel)
    except InputError as exc:
        return (str(exc), exc.record, exc.field)


def _comment_before_split(data: bytes) -> bytes:
    first = data.index(b"<ReportHost")
    return data[:first] + b'<!-- <ReportHost name="fake"> -->' + data[first:]


def _hosts_in_a_group(data: bytes) -> bytes:
    opened = data.index(b"<ReportHost")
    closed = data.index(b"</Report>")
    return data[:opened] + b"<Group>" + data[opened:closed] + b"</Group>" + data[closed:]


def _odd_port_at_the_end(data: bytes) -> bytes:
    last = data.rindex(b'port="3389"')
    return data[:last] + b'port="eighty"' + data[last + len(b'port="3389"') :]


@pytest.mark.parametrize(
    ("variant", "second_process_used"),
    [
        (lambda data: data, True),
        (_odd_port_at_the_end, True),  # a warning from the second process
        (_comment_before_split, False),  # the guessed count is wrong: read alone
        (_hosts_in_a_group, False),  # the hosts are not where the second process assumes
    ],
    ids=["plain", "warning", "comment", "group"],
)
def test_a_split_report_reads_the_same_as_in_one_process(
    tmp_path: Path, variant: Callable[[bytes], bytes], second_process_used: bool
) -> None:
    path = tmp_path / "split.nessus"
    path.write_bytes(variant(_split_base()))
    with _always_split(), mock.patch.object(nessus, "_replay", wraps=nessus._replay) as replay:
        split = nessus.plan_split(path, size=path.stat().st_size)
        assert split is not None
        assert path.read_bytes()[split.offset :].startswith(b"<ReportHost ")
        together = _outcome(path, parallel=True)
    assert replay.called == second_process_used
    assert together == _outcome(path, parallel=False)
    assert isinstance(together, Normalized) and together.record_count == _SPLIT_HOSTS


def test_a_host_left_open_before_the_split_is_not_hidden_by_it(tmp_path: Path) -> None:
    path = tmp_path / "split.nessus"
    data = _split_base()
    path.write_bytes(
        data.replace(b"</ReportHost>", b" /ReportHost>", 2).replace(
            b" /ReportHost>", b"</ReportHost>", 1
        )
    )  # the second host never ends: the split host opens inside it
    with _always_split():
        split = _outcome(path, parallel=True)
    assert split == _outcome(path, parallel=False)
    assert isinstance(split, tuple) and "mismatched tag" in split[0]


def test_a_fault_after_the_split_is_reported_as_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "split.nessus"
    data = _split_base()
    last = data.rindex(b'severity="2"')
    path.write_bytes(data[:last] + b'severity="9"' + data[last + len(b'severity="2"') :])
    with _always_split():
        split = _outcome(path, parallel=True)
    assert split == _outcome(path, parallel=False)
    assert split == (
        "split.nessus: record 5 (host h5.corp) item 1 (plugin 2): field 'severity': "
        "expected a severity 0-4, found '9'",
        "5 (host h5.corp) item 1 (plugin 2)",
        "severity",
    )


@st.composite
def _split_mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(_split_base())
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from(_SNIPPETS))
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_split_mutated())
def test_reading_in_two_processes_gives_what_one_gives(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.nessus"
        path.write_bytes(data)
        with _always_split():
            split = _outcome(path, parallel=True)
        assert split == _outcome(path, parallel=False)
