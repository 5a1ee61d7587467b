"""Organizational records: a JSON or YAML file of what an organization attests and keeps.

Insurers ask about things no scanner sees: awareness training, phishing
tests, the incident response plan and its tabletop exercise, the last
penetration test, log retention, the 24/7 monitoring contract, who is
responsible for what, and the email authentication of each domain. This
connector reads one file of such records and emits organization-level
signals about one asset of kind ``organization`` (and one ``email_domain``
asset per domain), so that the controls over them can be evaluated.

The file (every section optional; times ISO 8601 with a zone)::

    claimready_records: 1
    organization: Acme Dental Group
    as_of: 2026-01-15T00:00:00Z          # the moment the records describe
    training: {completed_at: ..., completion_rate: 97.5}   # percent of staff
    phishing: {tested_at: ..., click_rate: 4.2}            # percent who clicked
    incident_response: {plan_approved_at: ..., tabletop_at: ...}
    pen_test: {performed_at: ..., report_sha256: <64 hex>}
    backups: {immutable: true, offline_copy: false}
    logging: {retention_days: 365}
    monitoring: {provider: ..., always_on: true, contract_start: ...,
                 contract_end: ..., response_minutes: 30}
    responsibilities: {detect: ..., respond: ..., preserve-evidence: ...,
                       patch: ..., backup: ..., commander: ...}
    email_domains: [{domain: acme.example, spf: true, dkim: true, dmarc: reject}]

A field of the wrong type rejects the file with its name; records are what
the organization says, so evaluation shows them as such (their evidence is
this file, stored in the ledger like any other).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import yaml

from claimready.assets.identity import AssetObservation, source_identifier
from claimready.connectors.base import Connector, EvidenceFile, Normalized, SignalSpec
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact, FactValue
from claimready.timeutil import parse_utc

KIND = "records"
ORGANIZATION_KIND = "organization"
DOMAIN_KIND = "email_domain"
ORGANIZATION_KEY = "organization"
MARKER = b"claimready_records"
MAX_BYTES = 4 * 1024 * 1024
REQUIRED_FUNCTIONS = ("detect", "respond", "preserve-evidence", "patch", "backup")
DMARC_POLICIES = ("none", "quarantine", "reject")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# (section, field, signal, type, description)
_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("training", "completed_at", "training.completed", "time", "last awareness campaign end"),
    ("training", "completion_rate", "training.completion_rate", "number", "percent completed"),
    ("phishing", "tested_at", "phishing.tested", "time", "last phishing simulation"),
    ("phishing", "click_rate", "phishing.click_rate", "number", "percent who clicked"),
    ("incident_response", "plan_approved_at", "ir.plan_approved", "time", "IR plan approval"),
    ("incident_response", "tabletop_at", "ir.tabletop", "time", "last tabletop exercise"),
    ("pen_test", "performed_at", "pentest.performed", "time", "last penetration test"),
    ("pen_test", "report_sha256", "pentest.report_sha256", "text", "hash of the report"),
    ("backups", "immutable", "backup.immutable", "bool", "a backup copy is immutable"),
    ("backups", "offline_copy", "backup.isolated", "bool", "a backup copy is kept offline"),
    ("logging", "retention_days", "log.retention_days", "number", "days logs are kept"),
    ("monitoring", "always_on", "monitoring.always_on", "bool", "24/7 monitoring contracted"),
    ("monitoring", "contract_start", "monitoring.contract_start", "time", "contract start"),
    ("monitoring", "contract_end", "monitoring.contract_end", "time", "contract end"),
    ("monitoring", "response_minutes", "monitoring.response_minutes", "number", "response SLA"),
)
SIGNAL_COMMANDER = "raci.commander"
SIGNAL_UNASSIGNED = "raci.unassigned"
SIGNAL_SPF = "email.spf"
SIGNAL_DKIM = "email.dkim"
SIGNAL_DMARC = "email.dmarc_policy"


def _time(value: Any, where: str, field: str) -> datetime:
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise InputError(f"expected a time, found {type(value).__name__}", file=where, field=field)
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise InputError(
            f"expected an ISO 8601 time with a zone, found {text!r}", file=where, field=field
        ) from exc


def _number(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(
            f"expected a non-negative number, found {value!r}", file=where, field=field
        )
    return float(value)


def _bool(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected true or false, found {value!r}", file=where, field=field)
    return value


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected text, found {value!r}", file=where, field=field)
    if field.endswith("report_sha256") and not _SHA256.fullmatch(value):
        raise InputError("expected 64 lowercase hex digits", file=where, field=field)
    return value


_READERS: dict[str, Callable[[Any, str, str], FactValue]] = {
    "time": _time,
    "number": _number,
    "bool": _bool,
    "text": _text,
}


def _section(document: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = document.get(name) or {}
    if not isinstance(value, dict):
        raise InputError("expected a mapping", file=where, field=name)
    return value


def _load(evidence: EvidenceFile) -> dict[str, Any]:
    where = evidence.display_name
    if evidence.size > MAX_BYTES:
        raise InputError(f"larger than {MAX_BYTES} bytes", file=where)
    try:
        document = yaml.safe_load(evidence.path.read_bytes())
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise InputError(f"not valid JSON or YAML: {problem}", file=where) from exc
    except (ValueError, RecursionError) as exc:  # an impossible date such as 2026-02-30
        raise InputError(f"unreadable value: {exc}", file=where) from exc
    if not isinstance(document, dict) or document.get("claimready_records") != 1:
        raise InputError(
            "expected a mapping with claimready_records: 1", file=where, field="claimready_records"
        )
    return document


def _organization_facts(document: dict[str, Any], where: str, at: datetime) -> list[Fact]:
    facts: list[Fact] = []
    for section, name, signal, kind, _ in _FIELDS:
        values = _section(document, section, where)
        if values.get(name) is not None:
            value = _READERS[kind](values[name], where, f"{section}.{name}")
            facts.append(Fact(ORGANIZATION_KEY, signal, value, at))
    roles = _section(document, "responsibilities", where)
    if roles:
        for role, party in roles.items():
            _text(party, where, f"responsibilities.{role}")
        missing = [f for f in REQUIRED_FUNCTIONS if f not in roles]
        facts.append(Fact(ORGANIZATION_KEY, SIGNAL_UNASSIGNED, float(len(missing)), at))
        facts.append(Fact(ORGANIZATION_KEY, SIGNAL_COMMANDER, "commander" in roles, at))
    return facts


def _domains(
    document: dict[str, Any], where: str, at: datetime
) -> tuple[list[AssetObservation], list[Fact]]:
    entries = document.get("email_domains") or []
    if not isinstance(entries, list):
        raise InputError("expected a list", file=where, field="email_domains")
    observations: list[AssetObservation] = []
    facts: list[Fact] = []
    for index, entry in enumerate(entries):
        field = f"email_domains[{index}]"
        if not isinstance(entry, dict):
            raise InputError("expected a mapping", file=where, field=field)
        domain = _text(entry.get("domain"), where, f"{field}.domain").strip().lower()
        key = f"domain:{domain}"
        observations.append(
            AssetObservation(key, DOMAIN_KIND, domain, (source_identifier(KIND, key),))
        )
        facts.append(Fact(key, SIGNAL_SPF, _bool(entry.get("spf"), where, f"{field}.spf"), at))
        facts.append(Fact(key, SIGNAL_DKIM, _bool(entry.get("dkim"), where, f"{field}.dkim"), at))
        policy = _text(entry.get("dmarc"), where, f"{field}.dmarc").lower()
        if policy not in DMARC_POLICIES:
            raise InputError(
                f"expected one of {DMARC_POLICIES}, found {policy!r}",
                file=where,
                field=f"{field}.dmarc",
            )
        facts.append(Fact(key, SIGNAL_DMARC, policy, at))
    return observations, facts


class RecordsConnector(Connector):
    """Organizational records: training, phishing, IR, pen test, logging, monitoring, email."""

    kind = KIND
    title = "Organizational records"
    version = "1.0"
    formats = ("claimready records file (JSON or YAML)",)
    signals = (
        *(SignalSpec(signal, kind, text) for _, _, signal, kind, text in _FIELDS),
        SignalSpec(SIGNAL_COMMANDER, "bool", "one incident commander is named"),
        SignalSpec(SIGNAL_UNASSIGNED, "number", "required functions with no responsible party"),
        SignalSpec(SIGNAL_SPF, "bool", "the domain publishes an SPF record"),
        SignalSpec(SIGNAL_DKIM, "bool", "the domain signs mail with DKIM"),
        SignalSpec(SIGNAL_DMARC, "text", "the domain's DMARC policy: none, quarantine, reject"),
    )
    blind_spots = (
        "records are what the organization states; the file is evidence of the statement, "
        "not of the underlying activity",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A JSON or YAML file carrying the records marker near its start."""
        return name.lower().endswith((".json", ".yaml", ".yml")) and MARKER in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One organization asset with its facts, plus one asset per email domain."""
        where = evidence.display_name
        document = _load(evidence)
        stated = _time(document["as_of"], where, "as_of") if "as_of" in document else None
        described = observed_at or stated
        at = described or collected_at
        name = document.get("organization") or "organization"
        organization = AssetObservation(
            ORGANIZATION_KEY,
            ORGANIZATION_KIND,
            _text(name, where, "organization"),
            (source_identifier(KIND, ORGANIZATION_KEY),),
        )
        facts = _organization_facts(document, where, at)
        domains, domain_facts = _domains(document, where, at)
        notes = () if described else (f"{where}: no as_of; taken to describe its collection time",)
        return Normalized(
            observations=(organization, *domains),
            facts=(*facts, *domain_facts),
            record_count=1 + len(domains),
            observed_from=None,
            observed_to=described,
            media_type="application/yaml",
            notes=notes,
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the records connector."""
    return [RecordsConnector()]
