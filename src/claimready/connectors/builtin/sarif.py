"""SARIF 2.1.0 logs (OASIS Static Analysis Results Interchange Format) from application
security tools and penetration tests.

A log has ``version`` ``"2.1.0"`` and ``runs``; each run names its tool
(``tool.driver.name``, with ``rules``: ``id`` and
``defaultConfiguration.level``), may name the repository it analysed
(``versionControlProvenance[].repositoryUri``) and the roots of its artifacts
(``originalUriBaseIds``), records ``invocations[].endTimeUtc``, and lists
``results``. A result names its rule (``ruleId``, ``rule.id`` or
``ruleIndex`` into the driver's rules), a ``level`` (``error``, ``warning``,
``note``, ``none``; when absent, the rule's default level, else ``warning``),
a ``kind`` (``fail`` unless given; ``pass``, ``notApplicable`` and
``informational`` are not findings), a ``baselineState`` (``absent`` means
the result is gone since the baseline) and ``suppressions``.

A result is taken as suppressed when at least one suppression is accepted
(``status`` ``accepted`` or no status) and none is ``underReview`` or
``rejected``: a suppression still being argued over leaves the finding open.

The asset is the application: the repository when the log names one, else the
tool together with the artifact root. Findings count per level: ``error`` as
high, ``warning`` as medium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claimready.assets.identity import AssetObservation, source_identifier
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.files import parse_json
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import parse_utc

KIND = "sarif"
MAX_BYTES = 512 * 1024 * 1024
SIGNAL_FINDING = "vuln.finding"
SIGNAL_HIGH = "vuln.high_open"
SIGNAL_MEDIUM = "vuln.medium_open"
SIGNAL_CVE = "vuln.cve"
SIGNAL_LAST_SCANNED = "scan.last_scanned"

LEVELS = ("error", "warning", "note", "none")
_COUNTED = {"error": SIGNAL_HIGH, "warning": SIGNAL_MEDIUM}
_NOT_FINDINGS = frozenset({"pass", "notApplicable", "informational"})
_ROOT_PREFERENCE = ("SRCROOT", "PROJECTROOT", "REPOROOT")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)


@dataclass(slots=True)
class _App:
    key: str
    display: str
    findings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))
    cves: dict[str, None] = field(default_factory=dict)
    ended: datetime | None = None
    counts_readable: bool = True


@dataclass(slots=True)
class _Log:
    file: str
    apps: dict[str, _App] = field(default_factory=dict)
    warnings: list[RecordWarning] = field(default_factory=list)
    results: int = 0


def _object(value: Any, *, log: _Log, record: str, name: str | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        found = type(value).__name__
        raise InputError(
            f"expected an object, found {found}", file=log.file, record=record, field=name
        )
    return value


def _array(value: Any, *, log: _Log, record: str, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        found = type(value).__name__
        raise InputError(
            f"expected an array, found {found}", file=log.file, record=record, field=name
        )
    return value


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def is_suppressed(suppressions: list[Any]) -> bool:
    """True when the result's suppressions hide it (see the module docstring)."""
    statuses = [s.get("status") if isinstance(s, dict) else None for s in suppressions]
    if any(status in ("underReview", "rejected") for status in statuses):
        return False
    return any(status in (None, "accepted") for status in statuses)


def _repository(run: dict[str, Any]) -> str | None:
    provenance = run.get("versionControlProvenance")
    for entry in provenance if isinstance(provenance, list) else []:
        uri = _text(entry.get("repositoryUri")) if isinstance(entry, dict) else None
        if uri:
            return uri.rstrip("/").removesuffix(".git")
    return None


def _artifact_root(run: dict[str, Any], results: list[Any]) -> str | None:
    bases = run.get("originalUriBaseIds")
    if isinstance(bases, dict):
        for name in (*_ROOT_PREFERENCE, *sorted(bases)):
            base = bases.get(name)
            uri = _text(base.get("uri")) if isinstance(base, dict) else None
            if uri:
                return uri
    uris = [uri for uri in map(_location_uri, results) if uri and "://" in uri]
    if not uris:
        return None
    common = min(uris)
    for uri in uris:
        while not uri.startswith(common):
            common = common[:-1]
    root = common[: common.rfind("/") + 1]
    return root if root.count("/") > 2 else None


def _location_uri(result: Any) -> str | None:
    if not isinstance(result, dict):
        return None
    locations = result.get("locations")
    first = locations[0] if isinstance(locations, list) and locations else None
    physical = first.get("physicalLocation") if isinstance(first, dict) else None
    artifact = physical.get("artifactLocation") if isinstance(physical, dict) else None
    return _text(artifact.get("uri")) if isinstance(artifact, dict) else None


def _app(log: _Log, run: dict[str, Any], tool: str, results: list[Any]) -> _App:
    repository = _repository(run)
    if repository:
        key, display = f"repo:{repository.lower()}", repository
    else:
        root = _artifact_root(run, results)
        key = f"{tool}:{root}" if root else f"{tool}:"
        display = f"{tool} @ {root}" if root else tool
    if key not in log.apps:
        log.apps[key] = _App(key=key, display=display)
    return log.apps[key]


def _rule(result: dict[str, Any], rules: list[Any]) -> tuple[str | None, dict[str, Any]]:
    index = result.get("ruleIndex")
    rule: dict[str, Any] = {}
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        rule = rules[index] if isinstance(rules[index], dict) else {}
    reference = result.get("rule")
    rule_id = (
        _text(result.get("ruleId"))
        or (_text(reference.get("id")) if isinstance(reference, dict) else None)
        or _text(rule.get("id"))
    )
    if not rule and rule_id:
        rule = next((r for r in rules if isinstance(r, dict) and r.get("id") == rule_id), {})
    return rule_id, rule


def _level(result: dict[str, Any], rule: dict[str, Any]) -> Any:
    if "level" in result:
        return result["level"]
    config = rule.get("defaultConfiguration")
    if isinstance(config, dict) and "level" in config:
        return config["level"]
    return "warning" if result.get("kind", "fail") == "fail" else "none"


def _read_result(log: _Log, app: _App, raw: Any, rules: list[Any], record: str) -> None:
    log.results += 1
    result = _object(raw, log=log, record=record)
    suppressions = _array(result.get("suppressions"), log=log, record=record, name="suppressions")
    if is_suppressed(suppressions) or result.get("baselineState") == "absent":
        return
    kind = result.get("kind", "fail")
    if isinstance(kind, str) and kind in _NOT_FINDINGS:
        return
    rule_id, rule = _rule(result, rules)
    if rule_id is None:
        log.warnings.append(
            RecordWarning(record, "ruleId", "no rule id; finding kept as 'unknown'")
        )
        rule_id = "unknown"
    level = _level(result, rule)
    if level not in LEVELS:
        log.warnings.append(RecordWarning(record, "level", f"unreadable level {level!r}"))
        app.counts_readable = False
        return
    app.findings.append(f"{rule_id}|{level}")
    if level in app.counts:
        app.counts[level] += 1
    if _CVE.fullmatch(rule_id):
        app.cves[rule_id.upper()] = None


def _end_time(log: _Log, run: dict[str, Any], record: str) -> datetime | None:
    ends: list[datetime] = []
    for position, raw in enumerate(
        _array(run.get("invocations"), log=log, record=record, name="invocations")
    ):
        invocation = _object(raw, log=log, record=record, name=f"invocations[{position}]")
        text = invocation.get("endTimeUtc")
        if text is None:
            continue
        try:
            ends.append(parse_utc(str(text)))
        except ValueError:
            log.warnings.append(
                RecordWarning(record, f"invocations[{position}].endTimeUtc", f"unreadable {text!r}")
            )
    return max(ends) if ends else None


def _read_run(log: _Log, index: int, raw: Any) -> None:
    record = f"run {index}"
    run = _object(raw, log=log, record=record)
    tool = _object(run.get("tool"), log=log, record=record, name="tool")
    driver = _object(tool.get("driver"), log=log, record=record, name="tool.driver")
    name = _text(driver.get("name"))
    if name is None:
        raise InputError(
            "missing tool name", file=log.file, record=record, field="tool.driver.name"
        )
    rules = _array(driver.get("rules"), log=log, record=record, name="tool.driver.rules")
    results = _array(run.get("results"), log=log, record=record, name="results")
    app = _app(log, run, name, results)
    ended = _end_time(log, run, record)
    if ended is not None and (app.ended is None or ended > app.ended):
        app.ended = ended
    for position, result in enumerate(results):
        _read_result(log, app, result, rules, f"{record} result {position}")


def _app_facts(app: _App, *, at: datetime, scanned: datetime | None) -> list[Fact]:
    facts = [Fact(app.key, SIGNAL_LAST_SCANNED, scanned, at)] if scanned else []
    if app.counts_readable:
        facts.extend(Fact(app.key, _COUNTED[level], n, at) for level, n in app.counts.items())
    facts.extend(Fact(app.key, SIGNAL_CVE, cve, at) for cve in sorted(app.cves))
    facts.extend(Fact(app.key, SIGNAL_FINDING, finding, at) for finding in app.findings)
    return facts


class SarifConnector(Connector):
    """SARIF 2.1.0 logs: open (unsuppressed) findings per application."""

    kind = KIND
    title = "SARIF 2.1.0 (application security and penetration-test findings)"
    version = "1.0"
    formats = ("SARIF 2.1.0 JSON log (.sarif)",)
    signals = (
        SignalSpec(SIGNAL_FINDING, "text", "one open finding: '<ruleId>|<level>'"),
        SignalSpec(SIGNAL_HIGH, "number", "open findings of level error"),
        SignalSpec(SIGNAL_MEDIUM, "number", "open findings of level warning"),
        SignalSpec(SIGNAL_CVE, "text", "a CVE named as the rule id of an open finding"),
        SignalSpec(SIGNAL_LAST_SCANNED, "time", "when the tool run ended (invocations endTimeUtc)"),
    )
    blind_spots = (
        "SARIF has no severity above 'error', so no critical count is given",
        "a log without versionControlProvenance identifies the application only by tool and "
        "artifact root, which may differ between CI runs",
        "a log without invocations endTimeUtc carries no scan time",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A ``.sarif`` file, or JSON naming the SARIF schema with version 2.1.0."""
        lowered = head.lower()
        if name.lower().endswith((".sarif", ".sarif.json")):
            return b'"runs"' in lowered or b'"version"' in lowered
        return b"sarif" in lowered and b'"2.1.0"' in lowered and b'"runs"' in lowered

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Observations and facts for every application in the log."""
        log = _Log(file=evidence.display_name)
        for index, run in enumerate(_runs(evidence, log)):
            _read_run(log, index, run)
        observations: list[AssetObservation] = []
        facts: list[Fact] = []
        times = [app.ended for app in log.apps.values() if app.ended is not None]
        for app in log.apps.values():
            ident = source_identifier(KIND, app.key)
            observations.append(AssetObservation(app.key, "application", app.display, (ident,)))
            at = observed_at or app.ended or collected_at
            facts.extend(_app_facts(app, at=at, scanned=app.ended or observed_at))
        notes = []
        if not log.apps:
            notes.append(f"{evidence.display_name}: the log has no runs")
        elif len(times) < len(log.apps) and observed_at is None:
            notes.append(
                f"{evidence.display_name}: runs without invocations endTimeUtc are taken to "
                "describe the collection time (pass --observed-at for an older log)"
            )
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=log.results,
            observed_from=min(times) if times and observed_at is None else None,
            observed_to=observed_at or (max(times) if times else None),
            media_type="application/sarif+json",
            warnings=tuple(log.warnings),
            notes=tuple(notes),
        )


def _runs(evidence: EvidenceFile, log: _Log) -> list[Any]:
    if evidence.size > MAX_BYTES:
        raise InputError("SARIF log is too large", file=log.file)
    with evidence.path.open("rb") as handle:
        document = parse_json(handle.read(MAX_BYTES + 1), file=log.file)
    if not isinstance(document, dict):
        found = type(document).__name__
        raise InputError(f"expected a SARIF log object, found {found}", file=log.file)
    version = document.get("version")
    if version != "2.1.0":
        raise InputError(
            f"expected version '2.1.0', found {version!r}", file=log.file, field="version"
        )
    if "runs" not in document:
        raise InputError("missing required field", file=log.file, field="runs")
    return _array(document["runs"], log=log, record="log", name="runs")


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the SARIF connector."""
    return [SarifConnector()]
