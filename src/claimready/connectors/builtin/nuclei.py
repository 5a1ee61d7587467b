"""ProjectDiscovery Nuclei: findings written with ``-jsonl``/``-json`` (one object per line)
or ``-json-export`` (one JSON array).

Each finding object has ``template-id`` (``templateID`` before v3), ``info``
(``severity``: ``info``/``low``/``medium``/``high``/``critical``/``unknown``;
``classification.cve-id``: a CVE id or a list of them; ``classification.cvss-score``),
``host`` (the target as given: a URL or ``host:port``), ``matched-at``
(``matched`` before v3), ``type`` (``http``, ``dns``, ``ssl``, ``network``...)
and ``timestamp`` (RFC 3339 with offset, when the match was made).

The asset is the target's host name; informational matches (technology and
version detection) are not findings and give no facts beyond the scan time.
A line that is not a JSON object, or a finding without a template id or
host, rejects the file naming the line; an unreadable timestamp or severity is
a warning and the facts it would give are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from claimready.assets.identity import AssetObservation, host_identifiers
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
)
from claimready.connectors.builtin.nessus import (
    FINDING_SIGNALS,
    SEVERITY_WORDS,
    SIGNAL_LAST_SCANNED,
    FindingTally,
    is_address,
    parse_score,
)
from claimready.connectors.files import parse_json
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import parse_utc

KIND = "nuclei"
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_ARRAY_BYTES = 512 * 1024 * 1024
_SEVERITIES = frozenset({*SEVERITY_WORDS, "unknown"})


@dataclass(slots=True)
class _Target:
    key: str
    display: str
    address_only: bool
    tally: FindingTally = field(default_factory=FindingTally)
    last: datetime | None = None


@dataclass(slots=True)
class _Scan:
    file: str
    targets: dict[str, _Target] = field(default_factory=dict)
    warnings: list[RecordWarning] = field(default_factory=list)
    records: int = 0


def _is_array(evidence: EvidenceFile) -> bool:
    with evidence.path.open("rb") as handle:
        return handle.read(4096).lstrip().startswith(b"[")


def _records(evidence: EvidenceFile) -> Iterator[tuple[str, Any]]:
    """(record label, parsed value) for each finding, streaming JSON lines."""
    with evidence.path.open("rb") as handle:
        if _is_array(evidence):
            if evidence.size > MAX_ARRAY_BYTES:
                raise InputError("JSON array export is too large", file=evidence.display_name)
            document = parse_json(handle.read(MAX_ARRAY_BYTES + 1), file=evidence.display_name)
            if not isinstance(document, list):
                raise InputError("expected a JSON array of findings", file=evidence.display_name)
            for index, value in enumerate(document):
                yield str(index), value
            return
        for number, line in enumerate(handle, start=1):
            if len(line) > MAX_LINE_BYTES:
                raise InputError("line is too long", file=evidence.display_name, record=number)
            if line.strip():
                where = f"{evidence.display_name} line {number}"
                yield f"line {number}", parse_json(line, file=where)


def _text(raw: dict[str, Any], names: tuple[str, ...], *, scan: _Scan, label: str) -> str:
    for name in names:
        value = raw.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is not None:
            found = type(value).__name__
            raise InputError(
                f"expected text, found {found}", file=scan.file, record=label, field=name
            )
    raise InputError("missing required field", file=scan.file, record=label, field=names[0])


def target_host(target: str) -> str:
    """The host name of a Nuclei target: a URL's host or ``host[:port]`` without the port."""
    if "://" in target:
        host = urlsplit(target).hostname or ""
    elif target.startswith("["):
        host = target[1:].split("]", 1)[0]
    else:
        host = target.rsplit(":", 1)[0] if target.count(":") == 1 else target
    return host.strip().rstrip(".").lower()


def _cves(classification: Any) -> list[str]:
    if not isinstance(classification, dict):
        return []
    value = classification.get("cve-id")
    values = value if isinstance(value, list) else [value]
    return [v.strip().upper() for v in values if isinstance(v, str) and v.strip()]


def _score(classification: Any) -> float | None:
    if not isinstance(classification, dict):
        return None
    value = classification.get("cvss-score")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    return parse_score(str(value))


def _read(scan: _Scan, label: str, raw: Any) -> None:
    scan.records += 1
    if not isinstance(raw, dict):
        found = type(raw).__name__
        raise InputError(f"expected an object, found {found}", file=scan.file, record=label)
    template = _text(raw, ("template-id", "templateID"), scan=scan, label=label)
    target = _text(raw, ("host",), scan=scan, label=label)
    label = f"{label} (template {template})"
    info = raw.get("info")
    if not isinstance(info, dict):
        found = type(info).__name__
        raise InputError(
            f"expected an object, found {found}", file=scan.file, record=label, field="info"
        )
    entry = _target(scan, target)
    _note_time(scan, entry, raw.get("timestamp"), label)
    severity = info.get("severity")
    word = severity.strip().lower() if isinstance(severity, str) else ""
    if word not in _SEVERITIES:
        scan.warnings.append(RecordWarning(label, "info.severity", f"unreadable {severity!r}"))
        entry.tally.counts_readable = False
        return
    if word == "info":
        return
    classification = info.get("classification")
    try:
        score = _score(classification)
    except ValueError:
        score = None
        entry.tally.scores_readable = False
        scan.warnings.append(RecordWarning(label, "info.classification.cvss-score", "unreadable"))
    entry.tally.add(template, word, _cves(classification), score)


def _target(scan: _Scan, target: str) -> _Target:
    host = target_host(target) or target.lower()
    if host not in scan.targets:
        scan.targets[host] = _Target(key=host, display=host, address_only=is_address(host))
    return scan.targets[host]


def _note_time(scan: _Scan, entry: _Target, value: Any, label: str) -> None:
    if not isinstance(value, str):
        scan.warnings.append(RecordWarning(label, "timestamp", "missing; match time unknown"))
        return
    try:
        moment = parse_utc(value)
    except ValueError:
        scan.warnings.append(RecordWarning(label, "timestamp", f"unreadable timestamp {value!r}"))
        return
    if entry.last is None or moment > entry.last:
        entry.last = moment


class NucleiConnector(Connector):
    """Nuclei findings: open findings, CVEs and last scan time per target host."""

    kind = KIND
    title = "ProjectDiscovery Nuclei"
    version = "1.0"
    formats = ("JSON lines (-jsonl / -json)", "JSON array (-json-export)")
    signals = FINDING_SIGNALS
    blind_spots = (
        "Nuclei writes only matches: a target that was scanned and matched nothing does not "
        "appear at all, so absence is not evidence of a clean host",
        "which templates ran is not in the output; a run with few templates looks clean",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """JSON whose objects carry Nuclei's template id and matched target fields."""
        template = b'"template-id"' in head or b'"templateID"' in head
        matched = b'"matched-at"' in head or b'"matched"' in head
        return template and matched and b'"info"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Observations and facts for every target host in the findings."""
        scan = _Scan(file=evidence.display_name)
        for label, raw in _records(evidence):
            _read(scan, label, raw)
        observations: list[AssetObservation] = []
        facts: list[Fact] = []
        times = [t.last for t in scan.targets.values() if t.last is not None]
        for entry in scan.targets.values():
            idents = () if entry.address_only else tuple(host_identifiers(entry.key))
            observations.append(AssetObservation(entry.key, "endpoint", entry.display, idents))
            at = observed_at or entry.last or collected_at
            scanned = entry.last or observed_at
            if scanned is not None:
                facts.append(Fact(entry.key, SIGNAL_LAST_SCANNED, scanned, at))
            facts.extend(entry.tally.facts(entry.key, at))
        notes = []
        if len(times) < len(scan.targets) and observed_at is None:
            notes.append(
                f"{evidence.display_name}: targets without a readable timestamp are taken to "
                "describe the collection time (pass --observed-at for an older export)"
            )
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=scan.records,
            observed_from=min(times) if times and observed_at is None else None,
            observed_to=observed_at or (max(times) if times else None),
            media_type="application/json" if _is_array(evidence) else "application/x-ndjson",
            warnings=tuple(scan.warnings),
            notes=tuple(notes),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Nuclei connector."""
    return [NucleiConnector()]
