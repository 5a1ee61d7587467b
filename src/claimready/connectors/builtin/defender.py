"""Microsoft Defender for Endpoint: the machine list (``GET /api/machines``).

Reads the API response as a JSON file, or a zip export holding
``machines/machines.json``. Field meanings follow Microsoft's documentation
of the Machine entity: ``healthStatus`` is ``Active`` for a sensor that
reports normally (other values: ``Inactive``, ``ImpairedCommunication``,
``NoSensorData``, ``NoSensorDataImpairedCommunication``, ``Unknown``);
``onboardingStatus`` is ``Onboarded`` for a protected machine; ``lastSeen`` is
when the sensor last reported.

A record whose values cannot be read (an unparseable ``lastSeen``, say) is
kept with a warning naming the record and field, and its asset stays
unverified for what that field would have shown; a record of the wrong
shape (not an object, no ``id``, a field of the wrong type) rejects the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from claimready.assets.identity import (
    CLOUD_ID,
    MAC,
    AssetObservation,
    Identifier,
    host_identifiers,
    identifier,
    source_identifier,
)
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.files import ZIP_SIGNATURE, is_zip, parse_json, read_zip_member
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import parse_utc

KIND = "defender"
SIGNAL_ONBOARDED = "edr.onboarded"
SIGNAL_HEALTHY = "edr.healthy"
SIGNAL_HEALTH_STATUS = "edr.health_status"
SIGNAL_LAST_SEEN = "edr.last_seen"
HEALTHY_STATUS = "Active"
ONBOARDED_STATUS = "Onboarded"
MACHINES_MEMBER = "machines.json"

_REQUIRED_TEXT = ("id", "healthStatus", "onboardingStatus")
_OPTIONAL_TEXT = ("computerDnsName", "lastSeen", "osPlatform", "aadDeviceId")


@dataclass(frozen=True, slots=True)
class _Machine:
    index: int
    machine_id: str
    dns_name: str | None
    health_status: str
    onboarding_status: str
    last_seen: datetime | None
    platform: str | None
    identifiers: tuple[Identifier, ...]


class DefenderConnector(Connector):
    """Defender for Endpoint machines: onboarding, sensor health and last contact."""

    kind = KIND
    title = "Microsoft Defender for Endpoint"
    version = "1.0"
    formats = ("/api/machines JSON response", "zip export with machines/machines.json")
    signals = (
        SignalSpec(SIGNAL_ONBOARDED, "bool", "the EDR sensor is onboarded (onboardingStatus)"),
        SignalSpec(SIGNAL_HEALTHY, "bool", "the EDR sensor reports normally (healthStatus Active)"),
        SignalSpec(SIGNAL_HEALTH_STATUS, "text", "the EDR's own sensor health status word"),
        SignalSpec(SIGNAL_LAST_SEEN, "time", "when the EDR sensor last reported"),
    )
    blind_spots = (
        "machines never onboarded and never discovered by Defender do not appear at all; "
        "reconcile with the RMM or directory inventory to find them",
        "healthStatus reflects the sensor, not whether antivirus definitions are current",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A JSON body naming the Machines collection, or a zip with a machines member."""
        if head.startswith(ZIP_SIGNATURE):
            return name.lower().endswith(".zip") and b"machines" in head.lower()
        return b"#Machines" in head or (b'"healthStatus"' in head and b'"value"' in head)

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Observations and facts for every machine in the export."""
        where, document = _load(evidence)
        records = _records(document, where=where)
        warnings: list[RecordWarning] = []
        machines = [_machine(index, raw, where, warnings) for index, raw in enumerate(records)]
        seen = [m.last_seen for m in machines if m.last_seen is not None]
        described = observed_at or (max(seen) if seen else None)
        at = described or collected_at
        facts: list[Fact] = []
        observations: list[AssetObservation] = []
        for machine in machines:
            observations.append(_observation(machine))
            facts.extend(_facts(machine, at))
        notes = (
            ()
            if described
            else (
                f"{where}: no readable lastSeen; the export is taken to describe its "
                "collection time (pass --observed-at for an older export)",
            )
        )
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=len(machines),
            observed_from=min(seen) if seen and observed_at is None else None,
            observed_to=described,
            media_type="application/zip" if where != evidence.display_name else "application/json",
            warnings=tuple(warnings),
            notes=notes,
        )


def _load(evidence: EvidenceFile) -> tuple[str, Any]:
    if is_zip(evidence.path):
        found = read_zip_member(
            evidence.path, display_name=evidence.display_name, suffix=MACHINES_MEMBER
        )
        if found is None:
            raise InputError(
                f"zip archive has no {MACHINES_MEMBER} (expected machines/{MACHINES_MEMBER})",
                file=evidence.display_name,
            )
        where, data = found
        return where, parse_json(data, file=where)
    return evidence.display_name, parse_json(evidence.path.read_bytes(), file=evidence.display_name)


def _records(document: Any, *, where: str) -> list[Any]:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict) or "value" not in document:
        raise InputError(
            "expected a JSON object with a 'value' array (the /api/machines response)",
            file=where,
            field="value",
        )
    value = document["value"]
    if not isinstance(value, list):
        raise InputError(
            f"expected an array, found {type(value).__name__}", file=where, field="value"
        )
    return value


def _text(raw: dict[str, Any], name: str, *, where: str, index: int, required: bool) -> str | None:
    if name not in raw:
        if required:
            raise InputError("missing required field", file=where, record=index, field=name)
        return None
    value = raw[name]
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        found = "empty text" if isinstance(value, str) else type(value).__name__
        raise InputError(f"expected text, found {found}", file=where, record=index, field=name)
    return value


def _machine(index: int, raw: Any, where: str, warnings: list[RecordWarning]) -> _Machine:
    if not isinstance(raw, dict):
        raise InputError(
            f"expected an object, found {type(raw).__name__}", file=where, record=index
        )
    text = {n: _text(raw, n, where=where, index=index, required=True) for n in _REQUIRED_TEXT}
    text.update(
        {n: _text(raw, n, where=where, index=index, required=False) for n in _OPTIONAL_TEXT}
    )
    machine_id = str(text["id"])
    label = f"{index} (id {machine_id})"
    last_seen: datetime | None = None
    if text["lastSeen"] is not None:
        try:
            last_seen = parse_utc(text["lastSeen"])
        except ValueError:
            warnings.append(
                RecordWarning(label, "lastSeen", f"unreadable timestamp {text['lastSeen']!r}")
            )
    else:
        warnings.append(RecordWarning(label, "lastSeen", "missing; sensor contact unknown"))
    idents = [source_identifier(KIND, machine_id), *host_identifiers(text["computerDnsName"])]
    cloud = identifier(CLOUD_ID, text["aadDeviceId"])
    if cloud is not None:
        idents.append(cloud)
    idents.extend(_macs(raw.get("ipAddresses"), where=where, index=index))
    return _Machine(
        index=index,
        machine_id=machine_id,
        dns_name=text["computerDnsName"],
        health_status=str(text["healthStatus"]),
        onboarding_status=str(text["onboardingStatus"]),
        last_seen=last_seen,
        platform=text["osPlatform"],
        identifiers=tuple(dict.fromkeys(idents)),
    )


def _macs(value: Any, *, where: str, index: int) -> list[Identifier]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            f"expected an array, found {type(value).__name__}",
            file=where,
            record=index,
            field="ipAddresses",
        )
    found: list[Identifier] = []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise InputError(
                "expected an object", file=where, record=index, field=f"ipAddresses[{position}]"
            )
        mac = entry.get("macAddress")
        ident = identifier(MAC, mac) if isinstance(mac, str) else None
        if ident is not None:
            found.append(ident)
    return found


def _asset_kind(platform: str | None) -> str:
    name = (platform or "").lower()
    if "server" in name:
        return "server"
    if name.startswith(("windows", "macos", "ios", "android")):
        return "workstation"
    return "endpoint"


def _observation(machine: _Machine) -> AssetObservation:
    return AssetObservation(
        key=machine.machine_id,
        kind=_asset_kind(machine.platform),
        display_name=machine.dns_name or f"{KIND}:{machine.machine_id}",
        identifiers=machine.identifiers,
    )


def _facts(machine: _Machine, at: datetime) -> list[Fact]:
    key = machine.machine_id
    facts = [
        Fact(key, SIGNAL_ONBOARDED, machine.onboarding_status == ONBOARDED_STATUS, at),
        Fact(key, SIGNAL_HEALTHY, machine.health_status == HEALTHY_STATUS, at),
        Fact(key, SIGNAL_HEALTH_STATUS, machine.health_status, at),
    ]
    if machine.last_seen is not None:
        facts.append(Fact(key, SIGNAL_LAST_SEEN, machine.last_seen, at))
    return facts


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Defender connector."""
    return [DefenderConnector()]
