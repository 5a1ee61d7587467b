"""Tenable Nessus: the ``.nessus`` v2 XML report (``NessusClientData_v2``).

Layout: ``Report`` holds one ``ReportHost`` per scanned target (its ``name``
attribute is the target as given: an address or a host name). Each host has
``HostProperties`` with ``<tag name="...">`` entries -- ``HOST_END`` (scan end
in the scanner's local time, ``Thu Jan 12 10:20:30 2023``), ``HOST_END_TIMESTAMP``
(the same moment as Unix seconds, newer scanners), ``host-fqdn``,
``netbios-name``, ``hostname``, ``mac-address`` (one or more, newline
separated), ``bios-uuid``, ``host-uuid`` (Tenable's own asset id),
``operating-system`` and ``system-type`` -- then one ``ReportItem`` per plugin
result with attributes ``pluginID``, ``severity`` (0 informational, 1 low,
2 medium, 3 high, 4 critical), ``port`` and ``svc_name``, and children ``cve``
(repeated), ``cvss3_base_score`` and ``cvss_base_score``.

The file is streamed: a report of a gigabyte is read in chunks with bounded
memory, and :meth:`NessusConnector.normalize_batches` yields results a few
hundred hosts at a time. expat calls Python for every element, which caps one
process near 40,000 findings a second, so a large report (32 MiB or more, on
a machine with two cores, from a process with one thread) is read by two:
a forked second process reads from a host start about 40% in, and the first
uses its hosts only after reaching that very host itself, with the same count
of hosts before it; in every other case (and when the second process fails,
as it does on a bad file) the first reads on alone, so the result, warnings
and errors are those of a single reader. A structural fault (wrong root, a host without a
name, a result without a plugin id or with a severity outside 0-4) rejects the
file naming the host and item; an unreadable score, port or time is a warning
and the facts it would have given are left out, so the host stays unverified
for them.
"""

from __future__ import annotations

import ipaddress
import pickle
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO

from claimready.assets.identity import (
    MAC,
    SERIAL,
    AssetObservation,
    Identifier,
    host_identifiers,
    identifier,
    source_identifier,
)
from claimready.connectors import xmlsplit
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.registry import hookimpl
from claimready.connectors.xmlsafe import CHUNK_BYTES, TextCapture, event_parser, stream_events
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import UTC

KIND = "nessus"
MEDIA_TYPE = "application/xml"
ROOT = "NessusClientData_v2"
DEFAULT_BATCH_HOSTS = 500

SIGNAL_CVE = "vuln.cve"
SIGNAL_CRITICAL = "vuln.critical_open"
SIGNAL_HIGH = "vuln.high_open"
SIGNAL_MEDIUM = "vuln.medium_open"
SIGNAL_MAX_CVSS = "vuln.max_cvss"
SIGNAL_FINDING = "vuln.finding"
SIGNAL_LAST_SCANNED = "scan.last_scanned"
SIGNAL_RDP = "exposure.rdp"
SIGNAL_SMB = "exposure.smb"
SIGNAL_INTERNET = "exposure.internet"

# Severity words shared by the scanner connectors, lowest first.
SEVERITY_WORDS = ("info", "low", "medium", "high", "critical")
COUNTED = {"critical": SIGNAL_CRITICAL, "high": SIGNAL_HIGH, "medium": SIGNAL_MEDIUM}

FINDING_SIGNALS = (
    SignalSpec(SIGNAL_CVE, "text", "a CVE open on the asset (one fact per CVE)"),
    SignalSpec(SIGNAL_CRITICAL, "number", "open critical-severity findings in this scan"),
    SignalSpec(SIGNAL_HIGH, "number", "open high-severity findings in this scan"),
    SignalSpec(SIGNAL_MEDIUM, "number", "open medium-severity findings in this scan"),
    SignalSpec(
        SIGNAL_MAX_CVSS, "number", "highest CVSS base score of the open findings (0 if none)"
    ),
    SignalSpec(SIGNAL_FINDING, "text", "one open finding: '<scanner rule id>|<severity>'"),
    SignalSpec(SIGNAL_LAST_SCANNED, "time", "when the scanner finished scanning the asset"),
)
EXPOSURE_SIGNALS = (
    SignalSpec(SIGNAL_RDP, "bool", "RDP (port 3389 or the msrdp service) was found open"),
    SignalSpec(SIGNAL_SMB, "bool", "SMB (port 445 or the cifs/smb service) was found open"),
    SignalSpec(
        SIGNAL_INTERNET,
        "bool",
        "the scanned address is reachable from the internet: not private (RFC 1918, "
        "unique local), shared (RFC 6598), loopback or link-local",
    ),
)

_SEVERITY = {str(number): number for number in range(len(SEVERITY_WORDS))}
_ITEM_TEXT = frozenset({"cve", "cvss3_base_score", "cvss_base_score"})
_HOST_TAGS = frozenset(
    {
        "HOST_END",
        "HOST_END_TIMESTAMP",
        "host-fqdn",
        "netbios-name",
        "hostname",
        "mac-address",
        "bios-uuid",
        "host-uuid",
        "host-ip",
        "serial",
        "operating-system",
        "system-type",
    }
)
_RDP_PORT, _SMB_PORT = "3389", "445"
_RDP_SERVICES = frozenset({"msrdp", "rdp"})
_SMB_SERVICES = frozenset({"cifs", "smb"})
_NETWORK_TYPES = frozenset(
    {"router", "firewall", "switch", "wireless-access-point", "load-balancer", "hub"}
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}


@dataclass(slots=True)
class FindingTally:
    """Open findings of one asset in one scan, summed into count, CVE and score facts.

    ``scores_readable`` turns False when a score could not be read: the
    maximum would then be a guess, so no ``vuln.max_cvss`` fact is given.
    ``counts_readable`` turns False when a severity could not be read.
    """

    findings: list[str] = field(default_factory=list)
    cves: dict[str, None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    max_score: float | None = None
    unscored: int = 0
    scores_readable: bool = True
    counts_readable: bool = True

    def add(self, rule: str, severity: str, cves: Iterable[str], score: float | None) -> None:
        """Record one open finding (severity low or above) of ``rule``."""
        self.findings.append(f"{rule}|{severity}")
        if severity in self.counts:
            self.counts[severity] += 1
        for cve in cves:
            self.cves[cve] = None
        if score is None:
            self.unscored += 1
        elif self.max_score is None or score > self.max_score:
            self.max_score = score

    def facts(self, key: str, at: datetime) -> list[Fact]:
        """Count, maximum-score, CVE and finding facts for ``key``."""
        facts: list[Fact] = []
        if self.counts_readable:
            facts.extend(Fact(key, COUNTED[word], n, at) for word, n in self.counts.items())
        if self.scores_readable:
            if not self.findings:
                facts.append(Fact(key, SIGNAL_MAX_CVSS, 0.0, at))
            elif self.max_score is not None:
                facts.append(Fact(key, SIGNAL_MAX_CVSS, self.max_score, at))
        facts.extend(Fact(key, SIGNAL_CVE, cve, at) for cve in sorted(self.cves))
        facts.extend(Fact(key, SIGNAL_FINDING, finding, at) for finding in self.findings)
        return facts


def parse_score(text: str | None) -> float | None:
    """A CVSS base score from text; None when absent; ValueError outside 0-10."""
    if text is None or not text.strip():
        return None
    score = float(text)
    if not 0.0 <= score <= 10.0:
        raise ValueError(f"score {text!r} is outside 0-10")
    return score


def is_address(name: str) -> bool:
    """True when ``name`` is an IPv4 or IPv6 address (never used as an identifier)."""
    try:
        ipaddress.ip_address(name.strip().strip("[]"))
    except ValueError:
        return False
    return True


#: Addresses a scan reaching them does not make internet-facing. Documentation ranges
#: (RFC 5737, RFC 3849) stand for public addresses, as documentation uses them.
_INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "::/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def internet_facing(address: str) -> bool | None:
    """Whether a scanned address is reachable from the internet (None: not an address)."""
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return not any(parsed in network for network in _INTERNAL_NETWORKS)


def parse_nessus_time(text: str) -> datetime:
    """``Thu Jan 12 10:20:30 2023`` as a UTC datetime (the text carries no zone)."""
    parts = text.split()
    if len(parts) != 5 or parts[1] not in _MONTHS:
        raise ValueError(f"not a Nessus time: {text!r}")
    clock = parts[3].split(":")
    if len(clock) != 3 or not all(p.isdigit() for p in clock):
        raise ValueError(f"not a Nessus time: {text!r}")
    hour, minute, second = (int(p) for p in clock)
    return datetime(
        int(parts[4]), _MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=UTC
    )


# Reports of at least this size are read by two processes (see _Split), when the machine has
# two cores and fork is safe (a process with one thread).
PARALLEL_MIN_BYTES = 32 << 20
# The elements around the hosts where a report is split, and what the second reader is fed first.
SPLIT_AROUND = (ROOT, "Report")
_SPLIT_PREFIX = b"<NessusClientData_v2><Report>"
_HOST_START = re.compile(rb"<ReportHost[\s/>]")
# The second process starts at the first host after this share of the file: less than half,
# since the first process also turns every host into facts and hands them on.
SPLIT_AT_PERCENT = 40


@dataclass(frozen=True, slots=True)
class _Split:
    """Where a second process starts reading a report: at a host start, ``offset`` bytes in.

    It is a guess from the bytes (``<ReportHost`` after the middle, and how many came
    before). The first reader confirms it when it meets that host with the same
    count and inside ``SPLIT_AROUND``; otherwise it reads on alone and the
    second reader's work is dropped. Either way the result is the same.
    """

    offset: int
    hosts_before: int


class _SplitReached(Exception):
    """The first reader reached the host where the second reader started."""


@dataclass(slots=True)
class _Host:
    index: int
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    tally: FindingTally = field(default_factory=FindingTally)
    rdp: bool = False
    smb: bool = False
    ports_readable: bool = True
    items: int = 0

    @property
    def label(self) -> str:
        return f"{self.index} (host {self.name})"


@dataclass(slots=True)
class _Item:
    """The ReportItem being read; its record label is built only for a warning or an error."""

    host: _Host
    index: int
    plugin: str
    severity: int
    cves: list[str] = field(default_factory=list)
    cvss3: str | None = None
    cvss2: str | None = None

    @property
    def label(self) -> str:
        return f"{self.host.label} item {self.index} (plugin {self.plugin})"


# Ends the reader acts on inside a ReportItem (besides the end of a captured text).
_STRUCTURE = frozenset({"ReportItem", "ReportHost", "HostProperties"})


class _Reader:
    """Expat callbacks turning the element stream into finished hosts.

    Inside a ReportItem (most of a report's elements) the parser calls the
    lean :meth:`_child_start` and :meth:`_child_end`, which only look for the
    three texts an item gives and for the end of the item.
    """

    def __init__(self, *, file: str, skip_hosts: int = 0, split: _Split | None = None) -> None:
        self.file = file
        self.parser = event_parser(self)
        self.capture = TextCapture(self.parser, file=file)
        self.done: list[_Host] = []
        self.warnings: list[RecordWarning] = []
        self.findings = 0
        self.root_seen = False
        # Hosts before this index are read but not kept: they were given already.
        self.skip_hosts = skip_hosts
        # Where another process reads the rest of the report from (see _Split).
        self.split = split
        self.hosts = 0
        self._host: _Host | None = None
        self._host_warnings = 0
        self._item: _Item | None = None
        self._in_props = False
        self._capturing: str | None = None
        self._tag_name = ""
        # The open elements outside any host, exact unless the report is _tangled: a host
        # opened inside another, or one ended inside an item. Only then can it be wrong.
        self._outside: list[str] = []
        self._tangled = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        """Element opened: begin an item, a host, or capture of a wanted text."""
        if self._host is None and name != "ReportHost":
            self._outside.append(name)
        if name == "ReportItem":
            self._start_item(attrs)
            self.parser.StartElementHandler = self._child_start
            self.parser.EndElementHandler = self._child_end
        elif name == "tag" and self._in_props:
            tag_name = attrs.get("name", "")
            if tag_name in _HOST_TAGS:
                self._capturing, self._tag_name = name, tag_name
                self.capture.begin()
        elif name == "ReportHost":
            self._start_host(attrs)
        elif name == "HostProperties":
            self._in_props = self._host is not None
        elif not self.root_seen:
            self._check_root(name)
        self.root_seen = True

    def end(self, name: str) -> None:
        """Element closed: store captured text, finish an item or a host."""
        if self._host is None and self._item is None and self._outside:
            self._outside.pop()
        if name == self._capturing:
            self._store(name, self.capture.finish())
            self._capturing = None
        elif name == "ReportItem" and self._item is not None:
            self._finish_item(self._item)
            self._item = None
            self.parser.StartElementHandler = self.start
            self.parser.EndElementHandler = self.end
        elif name == "ReportHost" and self._host is not None:
            self._finish_host(self._host)
        elif name == "HostProperties":
            self._in_props = False

    def _finish_host(self, host: _Host) -> None:
        if self._item is not None:  # a host ended inside one of its items: see _tangled
            self._tangled = True
        if host.index >= self.skip_hosts:
            self.done.append(host)
        else:
            del self.warnings[self._host_warnings :]
        self._host = None

    def _child_start(self, name: str, attrs: dict[str, str]) -> None:
        """An element opened inside a ReportItem: capture it when it is a wanted text."""
        if name in _ITEM_TEXT:
            self._capturing = name
            self.capture.begin()

    def _child_end(self, name: str) -> None:
        """An element closed inside a ReportItem."""
        if name == self._capturing or name in _STRUCTURE:
            self.end(name)

    def _check_root(self, name: str) -> None:
        if name != ROOT:
            raise InputError(
                f"not a Nessus v2 report: root element is <{name}>, expected <{ROOT}>",
                file=self.file,
            )

    def _start_host(self, attrs: dict[str, str]) -> None:
        if not self.root_seen:
            self._check_root("ReportHost")
        split = self.split
        if self._host is not None:
            self._tangled = True
        elif (
            split is not None
            and self.parser.CurrentByteIndex == split.offset
            and self.hosts == split.hosts_before
            and self._item is None
            and not self._tangled
            and self._outside == list(SPLIT_AROUND)
        ):
            raise _SplitReached  # the other process read this host and the rest
        name = attrs.get("name", "").strip()
        if not name:
            raise InputError(
                "ReportHost has no name attribute", file=self.file, record=self.hosts, field="name"
            )
        self._host = _Host(index=self.hosts, name=name)
        self._host_warnings = len(self.warnings)
        self.hosts += 1

    def _start_item(self, attrs: dict[str, str]) -> None:
        host = self._host
        if host is None:
            raise InputError("ReportItem outside a ReportHost", file=self.file, field="ReportItem")
        index = host.items
        host.items += 1
        plugin = attrs.get("pluginID", "").strip()
        if not plugin:
            raise InputError(
                "missing pluginID",
                file=self.file,
                record=f"{host.label} item {index}",
                field="pluginID",
            )
        severity = _SEVERITY.get(attrs.get("severity", "").strip())
        item = _Item(host, index, plugin, -1 if severity is None else severity)
        if severity is None:
            found = attrs.get("severity")
            raise InputError(
                f"expected a severity 0-4, found {found!r}",
                file=self.file,
                record=item.label,
                field="severity",
            )
        self._item = item
        self._note_exposure(host, attrs, item)

    def _note_exposure(self, host: _Host, attrs: dict[str, str], item: _Item) -> None:
        port = attrs.get("port", "0").strip()
        if not port.isdigit():
            host.ports_readable = False
            self.warnings.append(RecordWarning(item.label, "port", f"unreadable port {port!r}"))
        service = attrs.get("svc_name", "").strip().lower().rstrip("?")
        host.rdp = host.rdp or port == _RDP_PORT or service in _RDP_SERVICES
        host.smb = host.smb or port == _SMB_PORT or service in _SMB_SERVICES

    def _store(self, name: str, text: str) -> None:
        item = self._item
        if item is None:
            if self._host is not None and text:
                self._host.tags[self._tag_name] = text
        elif name == "cve":
            if text:
                item.cves.append(text.upper())
        elif name == "cvss3_base_score":
            item.cvss3 = text
        else:
            item.cvss2 = text

    def _finish_item(self, item: _Item) -> None:
        self.findings += 1
        if item.severity == 0 or self._host is None:
            return
        tally = self._host.tally
        raw = item.cvss3 if item.cvss3 else item.cvss2
        score: float | None = None
        try:
            score = parse_score(raw)
        except ValueError:
            tally.scores_readable = False
            field_name = "cvss3_base_score" if item.cvss3 else "cvss_base_score"
            self.warnings.append(RecordWarning(item.label, field_name, f"unreadable score {raw!r}"))
        tally.add(item.plugin, SEVERITY_WORDS[item.severity], item.cves, score)


def _host_time(host: _Host, warnings: list[RecordWarning]) -> tuple[datetime | None, bool]:
    """The host's scan end and whether it came from the zone-less HOST_END text."""
    stamp = host.tags.get("HOST_END_TIMESTAMP")
    if stamp is not None:
        if stamp.isdigit():
            return datetime.fromtimestamp(int(stamp), UTC), False
        warnings.append(RecordWarning(host.label, "HOST_END_TIMESTAMP", f"unreadable {stamp!r}"))
    text = host.tags.get("HOST_END")
    if text is None:
        warnings.append(RecordWarning(host.label, "HOST_END", "missing; scan time unknown"))
        return None, False
    try:
        return parse_nessus_time(text), True
    except ValueError:
        warnings.append(RecordWarning(host.label, "HOST_END", f"unreadable timestamp {text!r}"))
        return None, False


def _identifiers(host: _Host) -> tuple[Identifier, ...]:
    tags = host.tags
    found: list[Identifier] = []
    if "host-uuid" in tags:
        found.append(source_identifier(KIND, tags["host-uuid"]))
    if "bios-uuid" in tags:
        found.append(source_identifier("smbios", tags["bios-uuid"].lower()))
    serial = identifier(SERIAL, tags.get("serial"))
    if serial is not None:
        found.append(serial)
    for name in (tags.get("host-fqdn"), tags.get("hostname"), tags.get("netbios-name")):
        found.extend(host_identifiers(name))
    if not is_address(host.name):
        found.extend(host_identifiers(host.name))
    for mac in tags.get("mac-address", "").split():
        ident = identifier(MAC, mac)
        if ident is not None:
            found.append(ident)
    return tuple(dict.fromkeys(found))


def _asset_kind(tags: dict[str, str]) -> str:
    system = tags.get("system-type", "").lower()
    os_name = tags.get("operating-system", "").lower()
    if system in _NETWORK_TYPES:
        return "network_device"
    if "server" in os_name:
        return "server"
    if os_name.startswith(("microsoft windows", "mac os", "macos")):
        return "workstation"
    return "endpoint"


@dataclass(slots=True)
class _Batch:
    observations: list[AssetObservation] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    untimed: int = 0
    zoneless: int = 0


def _host_result(
    host: _Host,
    *,
    key: str,
    observed_at: datetime | None,
    at_default: datetime,
    batch: _Batch,
    warnings: list[RecordWarning],
) -> None:
    ended, zoneless = _host_time(host, warnings)
    if ended is not None:
        batch.times.append(ended)
        batch.zoneless += zoneless
    else:
        batch.untimed += 1
    at = observed_at or ended or at_default
    idents = _identifiers(host)
    display = host.tags.get("host-fqdn") or host.tags.get("hostname") or host.name
    batch.observations.append(AssetObservation(key, _asset_kind(host.tags), display, idents))
    scanned = ended or observed_at
    if scanned is not None:
        batch.facts.append(Fact(key, SIGNAL_LAST_SCANNED, scanned, at))
    batch.facts.extend(host.tally.facts(key, at))
    if host.ports_readable:
        batch.facts.append(Fact(key, SIGNAL_RDP, host.rdp, at))
        batch.facts.append(Fact(key, SIGNAL_SMB, host.smb, at))
    public = internet_facing(host.tags.get("host-ip") or host.name)
    if public is not None:
        batch.facts.append(Fact(key, SIGNAL_INTERNET, public, at))


def _notes(where: str, batch: _Batch, observed_at: datetime | None) -> tuple[str, ...]:
    notes: list[str] = []
    if batch.untimed and observed_at is None:
        notes.append(
            f"{where}: hosts without a readable HOST_END are taken to describe the collection "
            "time (pass --observed-at for an older report)"
        )
    if batch.zoneless:
        notes.append(
            f"{where}: HOST_END is the scanner's local time without a zone and was read as UTC "
            "(newer scanners also write HOST_END_TIMESTAMP, which is exact)"
        )
    return tuple(notes)


def merge_batches(batches: Iterable[Normalized], *, media_type: str) -> Normalized:
    """One result from the chunks of :meth:`Connector.normalize_batches`."""
    observations: list[AssetObservation] = []
    facts: list[Fact] = []
    warnings: list[RecordWarning] = []
    notes: dict[str, None] = {}
    starts: list[datetime] = []
    ends: list[datetime] = []
    count = 0
    for batch in batches:
        observations.extend(batch.observations)
        facts.extend(batch.facts)
        warnings.extend(batch.warnings)
        notes.update(dict.fromkeys(batch.notes))
        count += batch.record_count
        starts.extend([batch.observed_from] if batch.observed_from else [])
        ends.extend([batch.observed_to] if batch.observed_to else [])
    return Normalized(
        observations=tuple(observations),
        facts=tuple(facts),
        record_count=count,
        observed_from=min(starts) if starts else None,
        observed_to=max(ends) if ends else None,
        media_type=media_type,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


class NessusConnector(Connector):
    """Nessus v2 reports: open findings, CVEs, scores, scan time and RDP/SMB exposure per host."""

    kind = KIND
    title = "Tenable Nessus (.nessus v2 report)"
    version = "1.0"
    formats = (".nessus v2 XML export (NessusClientData_v2)",)
    signals = FINDING_SIGNALS + EXPOSURE_SIGNALS
    blind_spots = (
        "only the targets in the scan policy appear; hosts never scanned are absent, so "
        "reconcile with the EDR or RMM inventory",
        "an unauthenticated scan sees network-exposed flaws only; missing local patches show "
        "up only in credentialed scans",
        "exposure.rdp/exposure.smb are False when the port scan did not find the port, which "
        "includes ports outside the scanned range",
        "exposure.internet judges the scanned address alone: a host behind NAT scanned at "
        "its internal address is not internet-facing even if a port is forwarded to it",
    )

    def __init__(self, *, batch_hosts: int = DEFAULT_BATCH_HOSTS, parallel: bool = True) -> None:
        self.batch_hosts = batch_hosts
        self.parallel = parallel

    def detect(self, *, name: str, head: bytes) -> bool:
        """A ``.nessus`` file or XML whose root is ``NessusClientData_v2``."""
        return b"<NessusClientData_v2" in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Every host of the report, as the merge of :meth:`normalize_batches`."""
        batches = self.normalize_batches(
            evidence, observed_at=observed_at, collected_at=collected_at
        )
        return merge_batches(batches, media_type=MEDIA_TYPE)

    def normalize_batches(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Iterator[Normalized]:
        """Stream the report and yield one result per ``batch_hosts`` hosts.

        A large report is read by two processes when it can be (see
        :class:`_Split`); the result is the same as reading it in one.
        """
        name = evidence.display_name
        split = plan_split(evidence.path, size=evidence.size) if self.parallel else None
        batch = partial(
            self._batch, keys={}, evidence=evidence, observed_at=observed_at, at=collected_at
        )
        tail = (evidence.path, name, split) if split is not None else None
        yielded = False
        with xmlsplit.SecondProcess(_read_tail, tail) as second:
            reader = _Reader(file=name, split=split if second.running else None)
            try:
                events = stream_events(reader.parser, evidence.path, file=name)
                for result in _drain(reader, events, self.batch_hosts, batch):
                    yielded = True
                    yield result
            except _SplitReached:
                assert split is not None  # noqa: S101 - only a reader given a split reaches it
                parts = second.results()
                if parts is None:  # read the rest here: the same result, or the exact error
                    reader = _reader_for_rest(reader, split)
                    parts = stream_events(reader.parser, evidence.path, file=name)
                else:
                    parts = _replay(reader, parts)
                for result in _drain(reader, parts, self.batch_hosts, batch):
                    yielded = True
                    yield result
        if not reader.root_seen:
            raise InputError("empty file: no XML elements", file=name)
        if reader.done or not yielded:
            yield batch(reader.done, reader)

    def _batch(
        self,
        hosts: list[_Host],
        reader: _Reader,
        *,
        keys: dict[str, int],
        evidence: EvidenceFile,
        observed_at: datetime | None,
        at: datetime,
    ) -> Normalized:
        batch = _Batch()
        warnings, reader.warnings = reader.warnings, []
        for host in hosts:
            seen = keys.get(host.name, 0)
            keys[host.name] = seen + 1
            key = host.name if not seen else f"{host.name}#{seen + 1}"
            _host_result(
                host,
                key=key,
                observed_at=observed_at,
                at_default=at,
                batch=batch,
                warnings=warnings,
            )
        return Normalized(
            observations=tuple(batch.observations),
            facts=tuple(batch.facts),
            record_count=len(hosts),
            observed_from=min(batch.times) if batch.times and observed_at is None else None,
            observed_to=observed_at or (max(batch.times) if batch.times else None),
            media_type=MEDIA_TYPE,
            warnings=tuple(warnings),
            notes=_notes(evidence.display_name, batch, observed_at),
        )


_Batcher = Callable[[list[_Host], _Reader], Normalized]


def _drain(
    reader: _Reader, progress: Iterable[object], size: int, batch: _Batcher
) -> Iterator[Normalized]:
    """Follow ``progress``, yielding a batch whenever ``reader`` has ``size`` hosts done."""
    for _ in progress:
        while len(reader.done) >= size:
            hosts, reader.done = reader.done[:size], reader.done[size:]
            yield batch(hosts, reader)


def plan_split(path: Path, *, size: int, min_bytes: int | None = None) -> _Split | None:
    """Where a second process could start reading the report at ``path``; None to read it alone.

    Only a report of ``min_bytes`` (:data:`PARALLEL_MIN_BYTES`) or more with a
    :func:`~claimready.connectors.xmlsplit.plain_head` is split, and only when
    :func:`~claimready.connectors.xmlsplit.can_fork`.
    """
    if size < (PARALLEL_MIN_BYTES if min_bytes is None else min_bytes) or not xmlsplit.can_fork():
        return None
    with path.open("rb") as handle:
        if not xmlsplit.plain_head(handle.read(64 << 10), root=ROOT):
            return None
        at = size * SPLIT_AT_PERCENT // 100
        handle.seek(at)
        offset = xmlsplit.find_start(handle, at, _HOST_START)
        if offset is None:
            return None
        return _Split(offset, xmlsplit.count_starts(handle, offset, _HOST_START))


def _replay(
    reader: _Reader, parts: Iterator[tuple[list[_Host], list[RecordWarning]]]
) -> Iterator[None]:
    """Hand ``reader`` the hosts and warnings the second process read, part by part."""
    for hosts, warnings in parts:
        reader.done.extend(hosts)
        reader.warnings.extend(warnings)
        yield None


def _reader_for_rest(reader: _Reader, split: _Split) -> _Reader:
    """A reader of the whole file that keeps ``reader``'s pending hosts and skips those given."""
    rest = _Reader(file=reader.file, skip_hosts=split.hosts_before)
    rest.done, rest.warnings = reader.done, reader.warnings
    return rest


def _read_tail(path: Path, file: str, split: _Split, out: IO[bytes]) -> None:
    """The second process: read ``path`` from ``split.offset`` as if inside SPLIT_AROUND.

    Writes ``(hosts, warnings)`` pickles to ``out`` as it goes; any error ends
    it (see :class:`~claimready.connectors.xmlsplit.SecondProcess`).
    """
    reader = _Reader(file=file)
    reader.hosts = split.hosts_before
    reader.parser.Parse(_SPLIT_PREFIX, False)
    with path.open("rb") as handle:
        handle.seek(split.offset)
        while chunk := handle.read(CHUNK_BYTES):
            reader.parser.Parse(chunk, False)
            if reader.done or reader.warnings:
                pickle.dump((reader.done, reader.warnings), out)
                reader.done, reader.warnings = [], []
    reader.parser.Parse(b"", True)
    pickle.dump((reader.done, reader.warnings), out)


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Nessus connector."""
    return [NessusConnector()]
