"""Microsoft Intune: managed devices (Graph ``GET /deviceManagement/managedDevices``).

Reads the Graph response (``{"@odata.context": ".../$metadata#deviceManagement/
managedDevices", "value": [...]}``, or a bare array). Field meanings follow
Microsoft's documentation of the managedDevice resource:

* ``id`` — the Intune device id; ``deviceName`` — its name;
  ``azureADDeviceId`` — the Entra ID device id (all zeros when the device is
  not registered in Entra ID); ``serialNumber``; ``wiFiMacAddress`` and
  ``ethernetMacAddress`` (bare hex digits);
* ``complianceState`` — ``compliant``, ``noncompliant``, ``conflict``,
  ``error``, ``inGracePeriod``, ``configManager`` or ``unknown``;
* ``isEncrypted`` — the device's storage is encrypted;
* ``lastSyncDateTime`` — the last successful check-in with Intune
  (``0001-01-01T00:00:00Z`` when it never checked in);
* ``operatingSystem`` and ``osVersion``.

``unknown`` and ``configManager`` compliance say Intune does not know; they
give a warning and no ``device.compliant`` fact (the device stays unverified),
never a pass or a fail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from claimready.assets.identity import (
    CLOUD_ID,
    MAC,
    SERIAL,
    AssetObservation,
    Identifier,
    host_identifiers,
    identifier,
    source_identifier,
)
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    JsonMarkerConnector,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.jsonlines import Fields, read_time
from claimready.connectors.live import (
    MicrosoftConfig,
    MicrosoftLiveConnector,
    Sleep,
    collect_microsoft_listing,
    odata_records,
    read_json_evidence,
)
from claimready.connectors.registry import hookimpl
from claimready.facts.models import Fact

KIND = "intune"
SIGNAL_COMPLIANT = "device.compliant"
SIGNAL_COMPLIANCE_STATE = "device.compliance_state"
SIGNAL_ENCRYPTED = "device.encrypted"
SIGNAL_LAST_SYNC = "device.last_sync"
SIGNAL_OS = "device.os"
SIGNAL_OS_VERSION = "device.os_version"
DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"

COMPLIANT = frozenset({"compliant"})
NOT_COMPLIANT = frozenset({"noncompliant", "conflict", "error", "ingraceperiod"})
_NULL_GUID = "00000000-0000-0000-0000-000000000000"
_NEVER_YEAR = 1900


@dataclass(frozen=True, slots=True)
class _Device:
    device_id: str
    name: str | None
    compliance: str
    encrypted: bool | None
    last_sync: datetime | None
    os: str | None
    os_version: str | None
    identifiers: tuple[Identifier, ...]


def collect_intune_devices(
    client: httpx.Client, config: MicrosoftConfig, *, sleep: Sleep = time.sleep
) -> bytes:
    """Every managed device as one Graph response document.

    Needs the application permission ``DeviceManagementManagedDevices.Read.All``.
    """
    return collect_microsoft_listing(client, config, config.graph_url, DEVICES_PATH, sleep=sleep)


class IntuneConnector(MicrosoftLiveConnector, JsonMarkerConnector):
    """Intune managed devices: compliance, encryption, last check-in and OS."""

    kind = KIND
    title = "Microsoft Intune managed devices"
    version = "1.0"
    formats = ("Graph /deviceManagement/managedDevices JSON response (all pages joined)",)
    signals = (
        SignalSpec(SIGNAL_COMPLIANT, "bool", "Intune reports the device compliant with policy"),
        SignalSpec(SIGNAL_COMPLIANCE_STATE, "text", "Intune's own complianceState word"),
        SignalSpec(SIGNAL_ENCRYPTED, "bool", "the device's storage is encrypted (isEncrypted)"),
        SignalSpec(SIGNAL_LAST_SYNC, "time", "the device's last successful check-in with Intune"),
        SignalSpec(SIGNAL_OS, "text", "operating system name"),
        SignalSpec(SIGNAL_OS_VERSION, "text", "operating system version"),
    )
    blind_spots = (
        "devices never enrolled in Intune do not appear; reconcile with the EDR and directory",
        "compliance is only as strict as the tenant's compliance policies; a device with no "
        "policy assigned can show as compliant",
        "state is as of the device's last check-in; check device.last_sync for staleness",
    )

    # Collected: every managed device, Microsoft Graph.
    collector = staticmethod(collect_intune_devices)
    # Detected: a Graph body naming managedDevices, or objects with Intune's compliance
    # fields (complianceState and one of the two device fields).
    detect_markers = (b"$metadata#deviceManagement/managedDevices",)
    detect_fields = ("complianceState", ("azureADDeviceId", "managedDeviceOwnerType"))

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Observations and device facts for every managed device."""
        where = evidence.display_name
        records = odata_records(
            read_json_evidence(evidence), where=where, what="the managedDevices response"
        )
        warnings: list[RecordWarning] = []
        devices = [_device(index, raw, where, warnings) for index, raw in enumerate(records)]
        syncs = [d.last_sync for d in devices if d.last_sync is not None]
        described = observed_at or (max(syncs) if syncs else None)
        at = described or collected_at
        facts: list[Fact] = []
        for index, device in enumerate(devices):
            facts.extend(_facts(device, at, f"{index} (id {device.device_id})", warnings))
        notes = (
            ()
            if described
            else (
                f"{where}: no readable lastSyncDateTime; the export is taken to describe its "
                "collection time (pass --observed-at for an older export)",
            )
        )
        return Normalized(
            observations=tuple(_observation(d) for d in devices),
            facts=tuple(facts),
            record_count=len(devices),
            observed_from=None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=notes,
        )


def _device(index: int, raw: object, where: str, warnings: list[RecordWarning]) -> _Device:
    fields = Fields(raw, file=where, record=index)
    device_id = str(fields.id_text("id", required=True))
    label = f"{index} (id {device_id})"
    name = fields.text("deviceName")
    last_sync = read_time(fields, "lastSyncDateTime", warnings=warnings, label=label)
    if last_sync is not None and last_sync.year < _NEVER_YEAR:
        warnings.append(RecordWarning(label, "lastSyncDateTime", "the device never checked in"))
        last_sync = None
    idents: list[Identifier] = [source_identifier(KIND, device_id), *host_identifiers(name)]
    cloud = fields.text("azureADDeviceId")
    for kind, value in (
        (CLOUD_ID, None if cloud == _NULL_GUID else cloud),
        (SERIAL, fields.text("serialNumber")),
        (MAC, fields.text("wiFiMacAddress")),
        (MAC, fields.text("ethernetMacAddress")),
    ):
        found = identifier(kind, value)
        if found is not None:
            idents.append(found)
    return _Device(
        device_id=device_id,
        name=name,
        compliance=str(fields.text("complianceState", required=True)),
        encrypted=fields.boolean("isEncrypted"),
        last_sync=last_sync,
        os=fields.text("operatingSystem") or None,
        os_version=fields.text("osVersion") or None,
        identifiers=tuple(dict.fromkeys(idents)),
    )


def _facts(device: _Device, at: datetime, label: str, warnings: list[RecordWarning]) -> list[Fact]:
    key = device.device_id
    facts = [Fact(key, SIGNAL_COMPLIANCE_STATE, device.compliance, at)]
    state = device.compliance.lower()
    if state in COMPLIANT or state in NOT_COMPLIANT:
        facts.append(Fact(key, SIGNAL_COMPLIANT, state in COMPLIANT, at))
    else:
        warnings.append(
            RecordWarning(label, "complianceState", f"{device.compliance!r}: Intune does not know")
        )
    if device.encrypted is not None:
        facts.append(Fact(key, SIGNAL_ENCRYPTED, device.encrypted, at))
    if device.last_sync is not None:
        facts.append(Fact(key, SIGNAL_LAST_SYNC, device.last_sync, at))
    if device.os:
        facts.append(Fact(key, SIGNAL_OS, device.os, at))
    if device.os_version:
        facts.append(Fact(key, SIGNAL_OS_VERSION, device.os_version, at))
    return facts


def _asset_kind(os_name: str | None) -> str:
    name = (os_name or "").lower()
    if "server" in name:
        return "server"
    if name.startswith(("windows", "macos", "mac os")):
        return "workstation"
    return "endpoint"


def _observation(device: _Device) -> AssetObservation:
    return AssetObservation(
        key=device.device_id,
        kind=_asset_kind(device.os),
        display_name=device.name or f"{KIND}:{device.device_id}",
        identifiers=device.identifiers,
    )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Intune connector."""
    return [IntuneConnector()]
