"""Greenbone / OpenVAS: the XML report (GMP ``get_reports`` with the XML report format).

Layout: an outer ``<report>`` (or ``<get_reports_response>``) wraps the inner
``<report>``, which holds ``<results>`` with one ``<result>`` per finding, then
one ``<host>`` summary per scanned target, and ``<scan_end>``.

A ``result`` carries ``host`` (the address as text, with a ``hostname`` child
and an ``asset`` child whose ``asset_id`` is Greenbone's own id), ``port``
(``445/tcp``, ``general/tcp``), ``nvt`` (its ``oid`` attribute is the rule id;
``refs/ref[@type="cve"]`` or the older ``cve`` text list the CVEs;
``cvss_base`` is the NVT's score), ``severity`` (a CVSS-style score: 0 is a
log entry, negative values mark false positives, debug and error messages)
and ``threat`` (``Critical``/``High``/``Medium``/``Low``/``Log``).
A ``host`` summary has ``ip``, ``start``, ``end`` (RFC 3339) and ``detail``
name/value pairs (``hostname``). ``filters/term`` records the levels the
report was exported with (``levels=hml`` leaves out log results, so an open
port that only a log result shows is not in the file).

Severity words follow the CVSS v3 ranges: critical 9.0-10, high 7.0-8.9,
medium 4.0-6.9, low 0.1-3.9.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from xml.etree.ElementTree import Element

from claimready.assets.identity import AssetObservation, Identifier, host_identifiers
from claimready.assets.identity import source_identifier as qualified_id
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
)
from claimready.connectors.builtin.nessus import (
    EXPOSURE_SIGNALS,
    FINDING_SIGNALS,
    SIGNAL_INTERNET,
    SIGNAL_LAST_SCANNED,
    SIGNAL_RDP,
    SIGNAL_SMB,
    FindingTally,
    internet_facing,
    is_address,
    parse_score,
)
from claimready.connectors.registry import hookimpl
from claimready.connectors.xmlsafe import child_text, iter_elements, local_name
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import parse_utc

KIND = "openvas"
MEDIA_TYPE = "application/xml"
_ROOTS = frozenset({"report", "get_reports_response"})
_THREATS = {
    "critical": "critical",
    "high": "high",
    "medium": "medium",
    "low": "low",
    "log": "info",
    "debug": None,
    "false positive": None,
    "error": None,
}
_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
_FORMAT_XML = b"a994b278-1f62-11e1-96ac-406186ea4fc5"


@dataclass(slots=True)
class _Host:
    address: str
    hostnames: dict[str, None] = field(default_factory=dict)
    asset_ids: dict[str, None] = field(default_factory=dict)
    tally: FindingTally = field(default_factory=FindingTally)
    ports: set[str] = field(default_factory=set)
    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True)
class _Report:
    file: str
    hosts: dict[str, _Host] = field(default_factory=dict)
    warnings: list[RecordWarning] = field(default_factory=list)
    scan_end: datetime | None = None
    levels: str | None = None
    results: int = 0
    summaries: int = 0

    def host(self, address: str) -> _Host:
        if address not in self.hosts:
            self.hosts[address] = _Host(address=address)
        return self.hosts[address]


def severity_word(score: float) -> str | None:
    """The severity word of a Greenbone score; None for false positives, debug and errors."""
    if score < 0:
        return None
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "info"


def _time(report: _Report, text: str | None, *, record: str, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        report.warnings.append(RecordWarning(record, name, f"unreadable timestamp {text!r}"))
        return None


def _severity(
    report: _Report, result: Element, label: str
) -> tuple[str | None, float | None] | None:
    """(severity word, score) of a result; None (with a warning) when neither is readable.

    The word is None for false positives, debug and error entries.
    """
    raw = child_text(result, "severity")
    try:
        score = float(raw) if raw is not None else None
    except ValueError:
        score = None
    if score is not None and -10.0 <= score <= 10.0:
        return severity_word(score), score if score > 0 else None
    threat = (child_text(result, "threat") or "").lower()
    if threat in _THREATS:
        return _THREATS[threat], None
    report.warnings.append(RecordWarning(label, "severity", f"unreadable severity {raw!r}"))
    return None


def _cves(nvt: Element | None) -> list[str]:
    if nvt is None:
        return []
    found = [
        ref.get("id", "").upper()
        for ref in nvt.iterfind("refs/ref")
        if ref.get("type", "").lower() == "cve" and _CVE.fullmatch(ref.get("id", ""))
    ]
    legacy = child_text(nvt, "cve")
    if legacy:
        found.extend(match.upper() for match in _CVE.findall(legacy))
    return list(dict.fromkeys(found))


def _read_result(report: _Report, result: Element) -> None:
    index = report.results
    report.results += 1
    label = f"{index} (id {result.get('id', '?')})"
    host_element = result.find("host")
    if host_element is None or not (host_element.text or "").strip():
        raise InputError("result has no host", file=report.file, record=label, field="host")
    host = report.host((host_element.text or "").strip())
    _note_host_ids(host, host_element)
    port = child_text(result, "port")
    if port:
        host.ports.add(port.split("/", 1)[0])
    nvt = result.find("nvt")
    oid = nvt.get("oid", "").strip() if nvt is not None else ""
    if nvt is None or not oid:
        raise InputError("result has no NVT oid", file=report.file, record=label, field="nvt")
    graded = _severity(report, result, label)
    if graded is None:
        host.tally.counts_readable = False
        host.tally.scores_readable = False
        return
    word, score = graded
    if word is None or word == "info":
        return
    if score is None:
        try:
            score = parse_score(child_text(nvt, "cvss_base"))
        except ValueError:
            host.tally.scores_readable = False
            report.warnings.append(RecordWarning(label, "nvt/cvss_base", "unreadable score"))
    host.tally.add(oid, word, _cves(nvt), score)


def _note_host_ids(host: _Host, element: Element) -> None:
    name = child_text(element, "hostname")
    if name:
        host.hostnames[name] = None
    asset = element.find("asset")
    if asset is not None and asset.get("asset_id"):
        host.asset_ids[asset.get("asset_id", "")] = None


def _read_summary(report: _Report, element: Element) -> None:
    label = f"host {report.summaries}"
    report.summaries += 1
    address = child_text(element, "ip")
    if not address:
        raise InputError("host summary has no ip", file=report.file, record=label, field="ip")
    host = report.host(address)
    label = f"{label} ({address})"
    host.start = _time(report, child_text(element, "start"), record=label, name="start")
    host.end = _time(report, child_text(element, "end"), record=label, name="end")
    _note_host_ids(host, element)
    for detail in element.iterfind("detail"):
        if child_text(detail, "name") == "hostname":
            value = child_text(detail, "value")
            if value:
                host.hostnames[value] = None


def _read_port(report: _Report, element: Element) -> None:
    text = (element.text or "").strip()
    address = child_text(element, "host")
    if address and text:
        report.host(address).ports.add(text.split("/", 1)[0])


def _walk(report: _Report, events: Iterator[tuple[str, Element]]) -> None:
    path: list[str] = []
    for event, element in events:
        tag = local_name(element.tag)
        if event == "start":
            if not path and tag not in _ROOTS:
                raise InputError(
                    f"not a Greenbone report: root element is <{tag}>, expected <report>",
                    file=report.file,
                )
            path.append(tag)
            continue
        path.pop()
        parent = path[-1] if path else ""
        if tag == "result" and parent == "results":
            _read_result(report, element)
            element.clear()
        elif tag == "host" and parent == "report":
            _read_summary(report, element)
            element.clear()
        elif tag == "port" and parent == "ports":
            _read_port(report, element)
        elif tag == "scan_end" and parent == "report" and element.text and element.text.strip():
            report.scan_end = _time(report, element.text, record="report", name="scan_end")
        elif tag == "term" and parent == "filters":
            levels = re.search(r"\blevels=(\w+)", element.text or "")
            report.levels = levels.group(1) if levels else None
        elif tag == "results":
            element.clear()


def _identifiers(host: _Host) -> tuple[Identifier, ...]:
    found = [qualified_id(KIND, asset_id) for asset_id in host.asset_ids]
    for name in host.hostnames:
        if not is_address(name):
            found.extend(host_identifiers(name))
    return tuple(dict.fromkeys(found))


def _host_facts(
    host: _Host, *, at: datetime, scanned: datetime | None, complete: bool
) -> list[Fact]:
    key = host.address
    facts = [Fact(key, SIGNAL_LAST_SCANNED, scanned, at)] if scanned else []
    facts.extend(host.tally.facts(key, at))
    for signal, port in ((SIGNAL_RDP, "3389"), (SIGNAL_SMB, "445")):
        if port in host.ports:
            facts.append(Fact(key, signal, True, at))
        elif complete:
            facts.append(Fact(key, signal, False, at))
    public = internet_facing(host.address)
    if public is not None:
        facts.append(Fact(key, SIGNAL_INTERNET, public, at))
    return facts


def _notes(where: str, report: _Report, observations: list[AssetObservation]) -> list[str]:
    notes: list[str] = []
    if not report.hosts:
        notes.append(f"{where}: the report lists no hosts")
    anonymous = sum(1 for o in observations if not o.identifiers)
    if anonymous:
        notes.append(
            f"{where}: {anonymous} host(s) are known only by address, which is never used to "
            "match assets; they stay separate until a host name is scanned"
        )
    return notes


class OpenVasConnector(Connector):
    """Greenbone / OpenVAS reports: open findings, CVEs, scores and scan time per host."""

    kind = KIND
    title = "Greenbone / OpenVAS report"
    version = "1.0"
    formats = ("GMP report XML (report format 'XML')",)
    signals = FINDING_SIGNALS + EXPOSURE_SIGNALS
    blind_spots = (
        "only the targets of the task appear; hosts never scanned are absent",
        "a report exported without log-level results (levels=hml) lists open ports only "
        "where a finding was made, so exposure is reported only when found",
        "results hidden by the export filter (minimum QoD, overrides) are not in the file",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A GMP report: a ``<report`` element with a GMP/OMP version or the XML format id."""
        if b"<get_reports_response" in head:
            return True
        return b"<report" in head and (b"<gmp>" in head or b"<omp>" in head or _FORMAT_XML in head)

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Observations and facts for every host of the report."""
        report = _Report(file=evidence.display_name)
        _walk(report, iter_elements(evidence.path, file=evidence.display_name))
        complete = report.levels is not None and "g" in report.levels
        observations: list[AssetObservation] = []
        facts: list[Fact] = []
        times: list[datetime] = []
        untimed = 0
        for host in report.hosts.values():
            scanned = host.end or report.scan_end
            times.extend([scanned] if scanned else [])
            untimed += scanned is None
            at = observed_at or scanned or collected_at
            display = next(iter(host.hostnames), host.address)
            observations.append(
                AssetObservation(host.address, "endpoint", display, _identifiers(host))
            )
            facts.extend(
                _host_facts(host, at=at, scanned=scanned or observed_at, complete=complete)
            )
        notes = _notes(evidence.display_name, report, observations)
        if untimed and observed_at is None:
            notes.append(
                f"{evidence.display_name}: hosts without a scan end time are taken to describe "
                "the collection time (pass --observed-at for an older report)"
            )
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=report.results,
            observed_from=min(times) if times and observed_at is None else None,
            observed_to=observed_at or (max(times) if times else None),
            media_type=MEDIA_TYPE,
            warnings=tuple(report.warnings),
            notes=tuple(notes),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Greenbone / OpenVAS connector."""
    return [OpenVasConnector()]
