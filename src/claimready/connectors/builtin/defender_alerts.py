"""Microsoft Defender for Endpoint: the alert queue (``GET /api/alerts``).

Reads the API response (``{"@odata.context": ".../$metadata#Alerts", "value":
[...]}``, or a bare array of alerts). Field meanings follow Microsoft's
documentation of the Alert entity:

* ``id`` — the alert id; ``machineId`` — the Defender machine id of the
  device the alert is about (the same id as in ``/api/machines``, so assets
  reconcile with the machines connector); ``computerDnsName`` — its name;
* ``severity`` — ``UnSpecified``, ``Informational``, ``Low``, ``Medium`` or ``High``;
* ``status`` — ``Unknown``, ``New``, ``InProgress`` or ``Resolved``;
  ``assignedTo`` — the analyst who owns it; ``classification`` —
  ``TruePositive``, ``InformationalExpectedActivity``, ``FalsePositive`` (or null);
* ``alertCreationTime`` — when the alert was raised (the time each alert fact
  describes); ``lastUpdateTime`` — when it last changed (its status time).

An alert with no ``machineId`` is skipped with a warning; one with an
unreadable ``alertCreationTime`` gives a warning, its machine is observed but
the alert yields no facts; an alert of the wrong shape (not an object,
no ``id``, a field of the wrong type) rejects the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from claimready.assets.identity import AssetObservation, host_identifiers, source_identifier
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
    since_filter,
)
from claimready.connectors.registry import hookimpl
from claimready.facts.models import Fact

KIND = "defender_alerts"
MACHINE_SOURCE = "defender"
SIGNAL_ALERT = "log.alert"
SIGNAL_LAST_ALERT = "edr.last_alert"
SIGNAL_STATUS = "alert.status"
SIGNAL_ASSIGNED_TO = "alert.assigned_to"
SIGNAL_CLASSIFICATION = "alert.classification"
ALERTS_PATH = "/api/alerts"


@dataclass(frozen=True, slots=True)
class _Alert:
    alert_id: str
    machine_id: str
    dns_name: str | None
    severity: str
    status: str
    assigned_to: str | None
    classification: str | None
    created: datetime | None
    updated: datetime | None


def collect_defender_alerts(
    client: httpx.Client,
    config: MicrosoftConfig,
    *,
    since: datetime | None = None,
    sleep: Sleep = time.sleep,
) -> bytes:
    """Every alert (created at or after ``since``) as one ``/api/alerts`` document.

    Needs the application permission ``Alert.Read.All`` on WindowsDefenderATP.
    """
    params = since_filter("alertCreationTime", since)
    return collect_microsoft_listing(
        client, config, config.defender_url, ALERTS_PATH, params=params, sleep=sleep
    )


class DefenderAlertsConnector(MicrosoftLiveConnector, JsonMarkerConnector):
    """Defender for Endpoint alerts: what was detected on which machine, and who handled it."""

    kind = KIND
    title = "Microsoft Defender for Endpoint alerts"
    version = "1.0"
    formats = ("/api/alerts JSON response (OData, all pages joined)",)
    signals = (
        SignalSpec(SIGNAL_ALERT, "text", "one per alert: '<alert id>|<severity>'"),
        SignalSpec(SIGNAL_LAST_ALERT, "time", "when the newest alert on the machine was raised"),
        SignalSpec(SIGNAL_STATUS, "text", "one per alert: '<alert id>|<status>' (New, Resolved…)"),
        SignalSpec(SIGNAL_ASSIGNED_TO, "text", "one per assigned alert: '<alert id>|<assignee>'"),
        SignalSpec(
            SIGNAL_CLASSIFICATION,
            "text",
            "one per classified alert: '<alert id>|<classification>'",
        ),
    )
    blind_spots = (
        "only alerts still inside Defender's retention and the collected period are present",
        "a machine with no alerts does not appear; absence of alerts is not evidence of "
        "monitoring (pair with the machines connector for sensor health)",
        "alerts raised by other Microsoft 365 Defender products without a machine are skipped",
    )

    # Collected: alerts created within the ``lookback`` window (default 1d), Defender API.
    collector = staticmethod(collect_defender_alerts)
    uses_lookback = True
    # Detected: an OData body naming the Alerts collection, or alert objects with a machine id.
    detect_markers = (b"$metadata#Alerts",)
    detect_fields = ("alertCreationTime", "machineId")

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Alert facts per machine, observed at each alert's creation time."""
        where = evidence.display_name
        records = odata_records(
            read_json_evidence(evidence), where=where, what="the /api/alerts response"
        )
        warnings: list[RecordWarning] = []
        alerts = [
            alert
            for index, raw in enumerate(records)
            if (alert := _alert(index, raw, where, warnings)) is not None
        ]
        created = [a.created for a in alerts if a.created is not None]
        times = created + [a.updated for a in alerts if a.updated is not None]
        described = observed_at or (max(times) if times else None)
        facts: list[Fact] = []
        for alert in alerts:
            facts.extend(_alert_facts(alert, observed_at))
        facts.extend(_last_alert_facts(alerts, described or collected_at))
        notes = () if described else (f"{where}: no readable alert time; nothing is dated",)
        return Normalized(
            observations=_observations(alerts),
            facts=tuple(facts),
            record_count=len(records),
            observed_from=min(created) if created and not observed_at else None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=notes,
        )


def _alert(index: int, raw: object, where: str, warnings: list[RecordWarning]) -> _Alert | None:
    fields = Fields(raw, file=where, record=index)
    alert_id = str(fields.id_text("id", required=True))
    label = f"{index} (id {alert_id})"
    severity = str(fields.text("severity", required=True))
    status = str(fields.text("status", required=True))
    machine_id = fields.text("machineId")
    dns_name = fields.text("computerDnsName")
    assigned = fields.text("assignedTo")
    classification = fields.text("classification")
    created = read_time(fields, "alertCreationTime", warnings=warnings, label=label)
    updated = read_time(fields, "lastUpdateTime", warnings=warnings, label=label)
    if not machine_id or not machine_id.strip():
        warnings.append(RecordWarning(label, "machineId", "missing; the alert has no machine"))
        return None
    if created is None and fields.text("alertCreationTime") is None:
        warnings.append(RecordWarning(label, "alertCreationTime", "missing; alert undated"))
    return _Alert(
        alert_id=alert_id,
        machine_id=machine_id.strip(),
        dns_name=dns_name,
        severity=severity,
        status=status,
        assigned_to=assigned or None,
        classification=classification or None,
        created=created,
        updated=updated,
    )


def _alert_facts(alert: _Alert, observed_at: datetime | None) -> list[Fact]:
    if alert.created is None:
        return []
    key = alert.machine_id
    raised = observed_at or alert.created
    status_time = observed_at or alert.updated or alert.created
    facts = [
        Fact(key, SIGNAL_ALERT, f"{alert.alert_id}|{alert.severity}", raised),
        Fact(key, SIGNAL_STATUS, f"{alert.alert_id}|{alert.status}", status_time),
    ]
    if alert.assigned_to:
        facts.append(
            Fact(key, SIGNAL_ASSIGNED_TO, f"{alert.alert_id}|{alert.assigned_to}", status_time)
        )
    if alert.classification:
        facts.append(
            Fact(
                key, SIGNAL_CLASSIFICATION, f"{alert.alert_id}|{alert.classification}", status_time
            )
        )
    return facts


def _last_alert_facts(alerts: list[_Alert], at: datetime) -> list[Fact]:
    newest: dict[str, datetime] = {}
    for alert in alerts:
        if alert.created is None:
            continue
        current = newest.get(alert.machine_id)
        if current is None or alert.created > current:
            newest[alert.machine_id] = alert.created
    return [Fact(key, SIGNAL_LAST_ALERT, value, at) for key, value in sorted(newest.items())]


def _observations(alerts: list[_Alert]) -> tuple[AssetObservation, ...]:
    names: dict[str, str | None] = {}
    for alert in alerts:
        if names.get(alert.machine_id) is None:
            names[alert.machine_id] = alert.dns_name
    return tuple(
        AssetObservation(
            key=machine_id,
            kind="endpoint",
            display_name=dns or f"{MACHINE_SOURCE}:{machine_id}",
            identifiers=tuple(
                dict.fromkeys(
                    [source_identifier(MACHINE_SOURCE, machine_id), *host_identifiers(dns)]
                )
            ),
        )
        for machine_id, dns in sorted(names.items())
    )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Defender alerts connector."""
    return [DefenderAlertsConnector()]
