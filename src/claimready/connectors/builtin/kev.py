"""CISA Known Exploited Vulnerabilities (KEV) catalog: reference data, not per-asset evidence.

The catalog (``known_exploited_vulnerabilities.json``) is one JSON object:
``catalogVersion``, ``dateReleased`` (RFC 3339 date-time), ``count`` and
``vulnerabilities``, each with ``cveID``, ``vendorProject``, ``product``,
``vulnerabilityName``, ``dateAdded`` (``YYYY-MM-DD``: when CISA listed it as
exploited), ``shortDescription``, ``requiredAction``, ``dueDate``
(``YYYY-MM-DD``: the remediation deadline for US federal agencies),
``knownRansomwareCampaignUse`` (``Known`` or ``Unknown``), ``notes`` and
``cwes``. It is validated against CISA's published JSON schema, bundled with
this package.

:func:`parse_catalog` is the pure parser. The connector turns the catalog into
facts about one reference asset (``cisa-kev``), which evaluation joins to the
``vuln.cve`` facts of real assets by CVE id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

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
from claimready.timeutil import UTC, parse_utc

KIND = "kev"
REFERENCE_KEY = "cisa-kev"
REFERENCE_KIND = "reference"
MAX_BYTES = 64 * 1024 * 1024
SCHEMA_PACKAGE = "claimready.connectors"
SCHEMA_PATH = ("schemas", "kev", "known_exploited_vulnerabilities_schema.json")

SIGNAL_LISTED = "kev.listed"
SIGNAL_DUE = "kev.due"
SIGNAL_DUE_BY = "kev.due_by"
SIGNAL_RANSOMWARE = "kev.ransomware"


@dataclass(frozen=True, slots=True)
class KevEntry:
    """One catalog entry, with the fields evaluation uses."""

    cve_id: str
    vendor_project: str
    product: str
    date_added: date
    due_date: date
    known_ransomware_campaign_use: str

    @property
    def ransomware(self) -> bool:
        """True when CISA knows the flaw to be used in ransomware campaigns."""
        return self.known_ransomware_campaign_use.strip().lower() == "known"


@dataclass(frozen=True, slots=True)
class KevCatalog:
    """The parsed catalog: version, release time and entries in catalog order."""

    catalog_version: str
    date_released: datetime
    entries: tuple[KevEntry, ...]
    warnings: tuple[RecordWarning, ...] = ()


@cache
def kev_schema() -> dict[str, Any]:
    """CISA's JSON schema of the catalog, as bundled with this package."""
    resource = resources.files(SCHEMA_PACKAGE).joinpath(*SCHEMA_PATH)
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def _schema_error(error: ValidationError, *, file: str) -> InputError:
    path = list(error.absolute_path)
    record: str | int | None = None
    if len(path) >= 2 and path[0] == "vulnerabilities" and isinstance(path[1], int):
        record = path[1]
        path = path[2:]
    field = ".".join(str(p) for p in path) or None
    return InputError(
        f"does not match the KEV schema: {error.message}", file=file, record=record, field=field
    )


def _day(text: str, *, record: str, name: str, warnings: list[RecordWarning]) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        warnings.append(RecordWarning(record, name, f"unreadable date {text!r}"))
        return None


def parse_catalog(document: Any, *, file: str) -> KevCatalog:
    """Validate a decoded catalog against the KEV schema and return its typed entries.

    A document that does not match the schema raises InputError naming the
    entry and field; an entry whose dates cannot be read is left out with a
    warning.
    """
    validator = Draft7Validator(kev_schema())
    errors = sorted(
        validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        raise _schema_error(errors[0], file=file)
    try:
        released = parse_utc(document["dateReleased"])
    except ValueError as exc:
        raise InputError(
            f"unreadable date-time {document['dateReleased']!r}", file=file, field="dateReleased"
        ) from exc
    warnings: list[RecordWarning] = []
    entries: list[KevEntry] = []
    for index, raw in enumerate(document["vulnerabilities"]):
        label = f"{index} (id {raw['cveID']})"
        added = _day(raw["dateAdded"], record=label, name="dateAdded", warnings=warnings)
        due = _day(raw["dueDate"], record=label, name="dueDate", warnings=warnings)
        if added is None or due is None:
            continue
        entries.append(
            KevEntry(
                cve_id=raw["cveID"].upper(),
                vendor_project=raw["vendorProject"],
                product=raw["product"],
                date_added=added,
                due_date=due,
                known_ransomware_campaign_use=raw.get("knownRansomwareCampaignUse", "Unknown"),
            )
        )
    if document["count"] != len(document["vulnerabilities"]):
        warnings.append(
            RecordWarning(
                "catalog",
                "count",
                f"says {document['count']}, the catalog lists {len(document['vulnerabilities'])}",
            )
        )
    return KevCatalog(document["catalogVersion"], released, tuple(entries), tuple(warnings))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def catalog_facts(catalog: KevCatalog) -> list[Fact]:
    """The reference facts of the catalog, all about the ``cisa-kev`` asset."""
    facts: list[Fact] = []
    for entry in catalog.entries:
        listed = _midnight(entry.date_added)
        facts.append(Fact(REFERENCE_KEY, SIGNAL_LISTED, entry.cve_id, listed))
        facts.append(Fact(REFERENCE_KEY, SIGNAL_DUE, _midnight(entry.due_date), listed))
        facts.append(
            Fact(
                REFERENCE_KEY, SIGNAL_DUE_BY, f"{entry.cve_id}|{entry.due_date.isoformat()}", listed
            )
        )
        if entry.ransomware:
            facts.append(Fact(REFERENCE_KEY, SIGNAL_RANSOMWARE, entry.cve_id, listed))
    return facts


class KevConnector(Connector):
    """The CISA KEV catalog as reference facts: which CVEs are known exploited, since when."""

    kind = KIND
    title = "CISA Known Exploited Vulnerabilities catalog"
    version = "1.0"
    formats = ("known_exploited_vulnerabilities.json (catalog JSON feed)",)
    signals = (
        SignalSpec(
            SIGNAL_LISTED, "text", "a CVE CISA lists as known exploited (since observed_at)"
        ),
        SignalSpec(SIGNAL_DUE, "time", "the federal remediation due date of a listed CVE"),
        SignalSpec(SIGNAL_DUE_BY, "text", "a listed CVE and its due date: '<CVE id>|<YYYY-MM-DD>'"),
        SignalSpec(SIGNAL_RANSOMWARE, "text", "a listed CVE known to be used in ransomware"),
    )
    blind_spots = (
        "the catalog lists only exploitation CISA has confirmed; absence does not mean a CVE "
        "is not exploited",
        "entries are never removed, so a CVE listed after the incident does not prove it was "
        "known exploited before it: use the listing date",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """The KEV feed (not its schema): JSON with a catalog version and vulnerabilities."""
        if b'"$schema"' in head:
            return False
        return b'"catalogVersion"' in head and b'"vulnerabilities"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One reference observation and kev.* facts per listed CVE."""
        if evidence.size > MAX_BYTES:
            raise InputError("KEV catalog is too large", file=evidence.display_name)
        with evidence.path.open("rb") as handle:
            document = parse_json(handle.read(MAX_BYTES + 1), file=evidence.display_name)
        catalog = parse_catalog(document, file=evidence.display_name)
        observation = AssetObservation(
            REFERENCE_KEY,
            REFERENCE_KIND,
            "CISA Known Exploited Vulnerabilities",
            (source_identifier(KIND, REFERENCE_KEY),),
        )
        added = [_midnight(e.date_added) for e in catalog.entries]
        return Normalized(
            observations=(observation,),
            facts=tuple(catalog_facts(catalog)),
            record_count=len(document["vulnerabilities"]),
            observed_from=min(added) if added else None,
            observed_to=observed_at or catalog.date_released,
            media_type="application/json",
            warnings=catalog.warnings,
            notes=(f"{evidence.display_name}: catalog version {catalog.catalog_version}",),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the KEV catalog connector."""
    return [KevConnector()]
