"""Wazuh vulnerability detection and SCA results, as the Wazuh API and indexer return them.

Three shapes are read:

* **Wazuh 4.7 API** ``GET /vulnerability/{agent_id}``: ``data.affected_items[]``
  with ``cve`` (the CVE id), ``severity`` (``Critical``/``High``/``Medium``/
  ``Low``/``Untriaged``), ``status`` (``VALID`` open, ``PENDING`` awaiting
  confirmation, ``OBSOLETE`` fixed), ``cvss3_score``/``cvss2_score`` and
  ``detection_time`` (when the scanner found it). The agent is named only in
  the request URL, so it is taken from the file name (``agent-001`` /
  ``agent_001`` / ``agent001``); without one, the findings belong to one
  unidentified agent and a note says so.
* **Wazuh 4.8+ indexer** (``wazuh-states-vulnerabilities-*`` search result):
  ``hits.hits[]._source`` with ``agent.id``/``agent.name``, ``vulnerability.id``
  (the CVE), ``vulnerability.severity``, ``vulnerability.score.base`` and
  ``vulnerability.detected_at``; ``@timestamp`` when present. Every document
  in that index is an open vulnerability (fixed ones are removed).
* **Wazuh API** ``GET /sca/{agent_id}``: ``data.affected_items[]`` with
  ``policy_id``, ``score`` (percent of checks passed), ``pass``, ``fail`` and
  ``end_scan`` (scan end time); the agent comes from the file name as above.

Every agent is an asset keyed by its agent id (``wazuh:<id>``), with its name
as host name; agent ``000`` is the Wazuh manager, a server.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

from claimready.assets.identity import AssetObservation, host_identifiers, source_identifier
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.files import parse_json
from claimready.connectors.jsonlines import Fields, read_time
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact

SOURCE = "wazuh"
MANAGER_AGENT_ID = "000"
UNIDENTIFIED_AGENT = "unidentified"
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024

SIGNAL_CVE = "vuln.cve"
SIGNAL_CRITICAL = "vuln.critical_open"
SIGNAL_HIGH = "vuln.high_open"
SIGNAL_MEDIUM = "vuln.medium_open"
SIGNAL_MAX_CVSS = "vuln.max_cvss"
SIGNAL_LAST_SCANNED = "scan.last_scanned"
SIGNAL_SCA_SCORE = "sca.score"
SIGNAL_SCA_FAILED = "sca.failed"

SEVERITY_SIGNALS = {"critical": SIGNAL_CRITICAL, "high": SIGNAL_HIGH, "medium": SIGNAL_MEDIUM}
_SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
CLOSED_STATUSES = frozenset({"OBSOLETE"})
CVE_PATTERN = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
_AGENT_IN_NAME = re.compile(r"agent[-_]?(\d{3,})", re.IGNORECASE)

SCA_SIGNALS = (
    SignalSpec(SIGNAL_SCA_SCORE, "number", "SCA policy score: percent of checks passed"),
    SignalSpec(SIGNAL_SCA_FAILED, "number", "SCA checks failed in the latest scan of a policy"),
)


def agent_observation(agent_id: str, name: str | None) -> AssetObservation:
    """The asset for a Wazuh agent; agent 000 is the manager (a server)."""
    if agent_id == UNIDENTIFIED_AGENT:
        return AssetObservation(
            key=agent_id, kind="endpoint", display_name="Wazuh agent (not named in the file)"
        )
    idents = [source_identifier(SOURCE, agent_id), *host_identifiers(name)]
    return AssetObservation(
        key=agent_id,
        kind="server" if agent_id == MANAGER_AGENT_ID else "endpoint",
        display_name=name or f"{SOURCE}:{agent_id}",
        identifiers=tuple(dict.fromkeys(idents)),
    )


def agent_from_file_name(display_name: str) -> str | None:
    """The agent id in a file name such as ``vulns-agent-001.json``, or None."""
    found = _AGENT_IN_NAME.search(PurePath(display_name.split("!")[-1]).name)
    return found.group(1) if found else None


def load_document(evidence: EvidenceFile) -> Any:
    """The evidence file parsed as one JSON document, with a size limit."""
    if evidence.size > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"file is {evidence.size} bytes; at most {MAX_DOCUMENT_BYTES} are read as one "
            "JSON document",
            file=evidence.display_name,
        )
    return parse_json(evidence.path.read_bytes(), file=evidence.display_name)


def affected_items(document: Any, *, where: str) -> list[Any]:
    """``data.affected_items`` of a Wazuh API response."""
    top = Fields(document, file=where, record="document")
    return top.need("data").need_array("affected_items")


# Vulnerabilities ------------------------------------------------------------------------


@dataclass(slots=True)
class _AgentVulns:
    name: str | None = None
    severity: dict[str, str] = field(default_factory=dict)
    valid_cves: set[str] = field(default_factory=set)
    max_cvss: float | None = None
    last_detected: datetime | None = None

    def add(self, cve: str, severity: str, score: float | None, detected: datetime | None) -> None:
        previous = self.severity.get(cve, "")
        if _SEVERITY_RANK.get(severity, 0) >= _SEVERITY_RANK.get(previous, 0):
            self.severity[cve] = severity
        if score is not None and (self.max_cvss is None or score > self.max_cvss):
            self.max_cvss = score
        if detected is not None and (self.last_detected is None or detected > self.last_detected):
            self.last_detected = detected


@dataclass(slots=True)
class _VulnState:
    where: str
    agents: dict[str, _AgentVulns] = field(default_factory=lambda: defaultdict(_AgentVulns))
    warnings: list[RecordWarning] = field(default_factory=list)
    records: int = 0

    def add(
        self,
        agent_id: str,
        cve: str,
        *,
        severity: str | None,
        score: float | None,
        detected: datetime | None,
        label: str,
        cve_field: str,
    ) -> None:
        self.records += 1
        if CVE_PATTERN.fullmatch(cve):
            self.agents[agent_id].valid_cves.add(cve.upper())
        else:
            self.warnings.append(RecordWarning(label, cve_field, f"not a CVE id: {cve!r}"))
        key = cve.upper()
        self.agents[agent_id].add(key, (severity or "").strip().lower(), score, detected)


def _read_v47(items: list[Any], state: _VulnState, agent_id: str) -> None:
    state.agents.setdefault(agent_id, _AgentVulns())  # reported even with no findings
    for index, raw in enumerate(items):
        item = Fields(raw, file=state.where, record=index)
        cve = str(item.text("cve", required=True))
        label = f"{index} (cve {cve})"
        status = item.text("status")
        if status is not None and status.upper() in CLOSED_STATUSES:
            state.records += 1
            continue
        score = item.number("cvss3_score") or item.number("cvss2_score")
        state.add(
            agent_id,
            cve,
            severity=item.text("severity"),
            score=score,
            detected=read_time(item, "detection_time", warnings=state.warnings, label=label),
            label=label,
            cve_field="cve",
        )


def _read_v48(hits: list[Any], state: _VulnState) -> None:
    for index, raw in enumerate(hits):
        hit = Fields(raw, file=state.where, record=index)
        source = hit.obj("_source") or hit
        agent = source.need("agent")
        vuln = source.need("vulnerability")
        agent_id = str(agent.id_text("id", required=True))
        cve = str(vuln.text("id", required=True))
        label = f"{index} (agent {agent_id}, {cve})"
        state.agents[agent_id].name = state.agents[agent_id].name or agent.text("name")
        score_obj = vuln.obj("score")
        detected = read_time(vuln, "detected_at", warnings=state.warnings, label=label)
        if "@timestamp" in source.raw:
            stamp = read_time(source, "@timestamp", warnings=state.warnings, label=label)
            detected = max(filter(None, (detected, stamp)), default=None)
        state.add(
            agent_id,
            cve,
            severity=vuln.text("severity"),
            score=score_obj.number("base") if score_obj else None,
            detected=detected,
            label=label,
            cve_field=vuln.path("id"),
        )


def _vuln_facts(agent_id: str, vulns: _AgentVulns, at: datetime) -> list[Fact]:
    facts = [Fact(agent_id, SIGNAL_CVE, cve, at) for cve in sorted(vulns.valid_cves)]
    for severity, signal in SEVERITY_SIGNALS.items():
        count = sum(1 for value in vulns.severity.values() if value == severity)
        facts.append(Fact(agent_id, signal, count, at))
    if vulns.max_cvss is not None:
        facts.append(Fact(agent_id, SIGNAL_MAX_CVSS, vulns.max_cvss, at))
    if vulns.last_detected is not None:
        facts.append(Fact(agent_id, SIGNAL_LAST_SCANNED, vulns.last_detected, at))
    return facts


def _vuln_hits(document: Any, *, where: str) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "hits" in document:
        return Fields(document, file=where, record="document").need("hits").need_array("hits")
    return None


class WazuhVulnerabilitiesConnector(Connector):
    """Wazuh vulnerability detection: open CVEs per agent (4.7 API or 4.8 indexer)."""

    kind = "wazuh-vulnerabilities"
    title = "Wazuh vulnerability detection"
    version = "1.0"
    formats = (
        "Wazuh 4.7 API GET /vulnerability/{agent_id} response (JSON)",
        "Wazuh 4.8+ indexer search over wazuh-states-vulnerabilities-* (JSON)",
    )
    signals = (
        SignalSpec(SIGNAL_CVE, "text", "an open CVE on the asset (one fact per CVE)"),
        SignalSpec(SIGNAL_CRITICAL, "number", "open CVEs of critical severity"),
        SignalSpec(SIGNAL_HIGH, "number", "open CVEs of high severity"),
        SignalSpec(SIGNAL_MEDIUM, "number", "open CVEs of medium severity"),
        SignalSpec(SIGNAL_MAX_CVSS, "number", "highest CVSS base score among open CVEs"),
        SignalSpec(SIGNAL_LAST_SCANNED, "time", "latest vulnerability detection time"),
    )
    blind_spots = (
        "agents that are not enrolled, or whose syscollector inventory is disabled, are absent",
        "4.7 responses do not name the agent: name the file after it (agent-001.json)",
        "an agent with no open vulnerability is absent from 4.8 indexer results",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A 4.8 index search result, or a 4.7 response listing CVEs with detection times."""
        if b"wazuh-states-vulnerabilities" in head:
            return True
        return b'"affected_items"' in head and b'"detection_time"' in head and b'"cve"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Open CVEs and counts by severity per agent."""
        where = evidence.display_name
        document = load_document(evidence)
        state = _VulnState(where=where)
        notes: list[str] = []
        hits = _vuln_hits(document, where=where)
        if hits is not None:
            _read_v48(hits, state)
        else:
            agent_id = agent_from_file_name(where)
            if agent_id is None:
                agent_id = UNIDENTIFIED_AGENT
                notes.append(
                    f"{where}: a 4.7 vulnerability response does not name its agent; name the "
                    "file after it (agent-001.json) so the findings reach the right asset"
                )
            _read_v47(affected_items(document, where=where), state, agent_id)
        return _vuln_result(state, observed_at, collected_at, notes)


def _vuln_result(
    state: _VulnState, observed_at: datetime | None, collected_at: datetime, notes: list[str]
) -> Normalized:
    times = [a.last_detected for a in state.agents.values() if a.last_detected is not None]
    described = observed_at or (max(times) if times else None)
    if described is None:
        notes.append(
            f"{state.where}: no readable detection time; the findings are taken to describe "
            "their collection time"
        )
    at = described or collected_at
    facts: list[Fact] = []
    observations: list[AssetObservation] = []
    for agent_id in sorted(state.agents):
        vulns = state.agents[agent_id]
        observations.append(agent_observation(agent_id, vulns.name))
        facts.extend(_vuln_facts(agent_id, vulns, at))
    return Normalized(
        observations=tuple(observations),
        facts=tuple(facts),
        record_count=state.records,
        observed_from=min(times) if times and observed_at is None else None,
        observed_to=described,
        media_type="application/json",
        warnings=tuple(state.warnings),
        notes=tuple(notes),
    )


# SCA through the API ----------------------------------------------------------------------


def _sca_policy_facts(
    item: Fields, agent_id: str, observed_at: datetime | None, warnings: list[RecordWarning]
) -> tuple[list[Fact], datetime | None]:
    policy = str(item.text("policy_id", required=True))
    label = f"{item.record} (policy {policy})"
    score = item.need_number("score")
    failed = item.need_number("fail")
    end = read_time(item, "end_scan", warnings=warnings, label=label)
    at = observed_at or end
    if at is None:
        if item.raw.get("end_scan") is None:
            warnings.append(RecordWarning(label, "end_scan", "missing; scan time unknown"))
        return [], None
    return [
        Fact(agent_id, SIGNAL_SCA_SCORE, score, at),
        Fact(agent_id, SIGNAL_SCA_FAILED, failed, at),
    ], end


class WazuhScaConnector(Connector):
    """Wazuh Security Configuration Assessment results per policy (the API shape)."""

    kind = "wazuh-sca"
    title = "Wazuh SCA results"
    version = "1.0"
    formats = ("Wazuh API GET /sca/{agent_id} response (JSON)",)
    signals = SCA_SIGNALS
    blind_spots = (
        "the response does not name the agent: name the file after it (agent-001.json)",
        "policies not enabled on the agent are absent; a missing policy is not a pass",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A Wazuh API response listing SCA policies with scan end times."""
        return b'"affected_items"' in head and b'"policy_id"' in head and b'"end_scan"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Score and failed checks of each policy's latest scan, at the scan's end."""
        where = evidence.display_name
        items = affected_items(load_document(evidence), where=where)
        agent_id = agent_from_file_name(where) or UNIDENTIFIED_AGENT
        notes = (
            [f"{where}: an SCA response does not name its agent; name the file agent-001.json"]
            if agent_id == UNIDENTIFIED_AGENT
            else []
        )
        warnings: list[RecordWarning] = []
        facts: list[Fact] = []
        ends: list[datetime] = []
        for index, raw in enumerate(items):
            item = Fields(raw, file=where, record=index)
            found, end = _sca_policy_facts(item, agent_id, observed_at, warnings)
            facts.extend(found)
            ends.extend([end] if end else [])
        return Normalized(
            observations=(agent_observation(agent_id, None),),
            facts=tuple(facts),
            record_count=len(items),
            observed_from=min(ends) if ends and observed_at is None else None,
            observed_to=observed_at or (max(ends) if ends else None),
            media_type="application/json",
            warnings=tuple(warnings),
            notes=tuple(notes),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Wazuh vulnerability and SCA connectors."""
    return [WazuhVulnerabilitiesConnector(), WazuhScaConnector()]
