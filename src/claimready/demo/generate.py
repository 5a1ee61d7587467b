"""Generated evidence for the demo, in the exact shape the real tools export.

Deterministic for a seed and a moment, so the demo tells the same story on
every machine.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from claimready.timeutil import format_utc


@dataclass(frozen=True, slots=True)
class FleetFaults:
    """How many machines of a generated fleet are in each bad state."""

    inactive: int = 0
    not_onboarded: int = 0
    stale: int = 0


def _machine(
    rng: random.Random, index: int, *, now: datetime, domain: str, max_lag: int
) -> dict[str, Any]:
    server = index % 10 == 0
    name = f"{'srv' if server else 'ws'}-{index:03d}"
    mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
    return {
        "id": f"{rng.getrandbits(160):040x}",
        "computerDnsName": f"{name}.{domain}",
        "firstSeen": format_utc(now - timedelta(days=rng.randrange(200, 900))),
        "lastSeen": format_utc(now - timedelta(minutes=rng.randrange(5, max_lag))),
        "osPlatform": "WindowsServer2022" if server else "Windows11",
        "osVersion": None,
        "version": "22H2" if not server else "21H2",
        "healthStatus": "Active",
        "onboardingStatus": "Onboarded",
        "defenderAvStatus": "Updated",
        "riskScore": rng.choice(["None", "Low", "Medium"]),
        "exposureLevel": rng.choice(["Low", "Medium"]),
        "isAadJoined": not server,
        "aadDeviceId": None if server else f"{rng.getrandbits(128):032x}",
        "machineTags": ["server"] if server else [],
        "ipAddresses": [
            {
                "ipAddress": f"10.0.{index // 250}.{index % 250 + 1}",
                "macAddress": mac,
                "type": "Ethernet",
                "operationalStatus": "Up",
            }
        ],
    }


def defender_machines(
    *,
    count: int,
    now: datetime,
    seed: int,
    faults: FleetFaults,
    domain: str,
    max_lag_minutes: int = 600,
) -> dict[str, Any]:
    """An ``/api/machines`` response for ``count`` machines as seen at ``now``.

    Each machine last reported up to ``max_lag_minutes`` before ``now``; the
    faults are applied to the last machines of the list (the last is a server).
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    machines = [
        _machine(rng, i + 1, now=now, domain=domain, max_lag=max_lag_minutes) for i in range(count)
    ]
    cursor = count - 1
    for _ in range(faults.inactive):
        machines[cursor]["healthStatus"] = "Inactive"
        cursor -= 1
    for _ in range(faults.not_onboarded):
        machines[cursor]["onboardingStatus"] = "InsufficientInfo"
        cursor -= 1
    for _ in range(faults.stale):
        machines[cursor]["lastSeen"] = format_utc(now - timedelta(days=3, hours=rng.randrange(9)))
        cursor -= 1
    return {
        "@odata.context": "https://api.security.microsoft.com/api/$metadata#Machines",
        "value": machines,
    }


@dataclass(frozen=True, slots=True)
class OrganizationHistory:
    """The latest organizational event of each kind known at a records file's ``as_of``."""

    training: datetime
    phishing: datetime
    plan_approved: datetime
    tabletop: datetime
    pen_test: datetime
    monitoring_since: datetime


def organization_records(
    *, as_of: datetime, organization: str, domain: str, history: OrganizationHistory
) -> dict[str, Any]:
    """A records file stating the organization's latest events as of ``as_of``."""
    return {
        "claimready_records": 1,
        "organization": organization,
        "as_of": format_utc(as_of),
        "training": {"completed_at": format_utc(history.training), "completion_rate": 96},
        "phishing": {"tested_at": format_utc(history.phishing), "click_rate": 3.5},
        "incident_response": {
            "plan_approved_at": format_utc(history.plan_approved),
            "tabletop_at": format_utc(history.tabletop),
        },
        "pen_test": {"performed_at": format_utc(history.pen_test), "report_sha256": "0" * 64},
        "backups": {"immutable": True, "offline_copy": True},
        "logging": {"retention_days": 365},
        "monitoring": {
            "provider": "Example MDR",
            "always_on": True,
            "contract_start": format_utc(history.monitoring_since),
            "contract_end": format_utc(as_of + timedelta(days=700)),
            "response_minutes": 30,
        },
        "responsibilities": {
            "detect": "Example MDR",
            "respond": "Example MDR",
            "preserve-evidence": "internal IT",
            "patch": "internal IT",
            "backup": "internal IT",
            "commander": "IT director",
        },
        "email_domains": [{"domain": domain, "spf": True, "dkim": True, "dmarc": "reject"}],
    }


# --- the fleet and its people --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    """One machine of the generated fleet, named as every tool names it."""

    index: int
    name: str
    server: bool
    domain: str

    @property
    def fqdn(self) -> str:
        """The DNS name the EDR, the scanner and the RMM report."""
        return f"{self.name}.{self.domain}"


def fleet(*, count: int, domain: str) -> list[Host]:
    """The hosts of :func:`defender_machines` for the same ``count`` (every tenth is a server)."""
    hosts = []
    for index in range(1, count + 1):
        server = index % 10 == 0
        hosts.append(Host(index, f"{'srv' if server else 'ws'}-{index:03d}", server, domain))
    return hosts


@dataclass(frozen=True, slots=True)
class User:
    """One Entra ID account."""

    id: str
    upn: str
    display_name: str
    admin: bool


_FIRST = (
    "amelia", "ben", "chloe", "daniel", "emma", "felix", "grace", "henry", "isla", "jack",
    "kara", "liam", "maya", "noah", "olivia", "paul", "quinn", "rosa", "sam", "tara",
)  # fmt: skip
_LAST = ("adams", "brooks", "chen", "diaz")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def directory_users(*, count: int, admins: int, seed: int, domain: str) -> list[User]:
    """``count`` accounts; the first ``admins`` hold an administrator role."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    users = []
    for index in range(count):
        first, last = _FIRST[index % len(_FIRST)], _LAST[index // len(_FIRST) % len(_LAST)]
        local = f"admin.{first}" if index < admins else f"{first}.{last}"
        users.append(
            User(
                id=_uuid(rng),
                upn=f"{local}@{domain}",
                display_name=f"{first.title()} {last.title()}",
                admin=index < admins,
            )
        )
    return users


# --- Entra ID ------------------------------------------------------------------------------


def entra_registration(
    *, users: list[User], at: datetime, without_mfa: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A Graph ``userRegistrationDetails`` response refreshed at ``at``.

    Accounts whose UPN is in ``without_mfa`` have no MFA method registered.
    """
    rows = []
    for user in users:
        registered = user.upn not in without_mfa
        methods = ["microsoftAuthenticatorPush", "softwareOneTimePasscode"] if registered else []
        rows.append(
            {
                "id": user.id,
                "userPrincipalName": user.upn,
                "userDisplayName": user.display_name,
                "userType": "member",
                "isAdmin": user.admin,
                "isSsprRegistered": registered,
                "isSsprEnabled": True,
                "isSsprCapable": registered,
                "isMfaRegistered": registered,
                "isMfaCapable": registered,
                "isPasswordlessCapable": False,
                "methodsRegistered": methods,
                "isSystemPreferredAuthenticationMethodEnabled": True,
                "systemPreferredAuthenticationMethods": ["push"] if registered else [],
                "userPreferredMethodForSecondaryAuthentication": "push" if registered else "none",
                "lastUpdatedDateTime": format_utc(at),
            }
        )
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#reports/"
        "authenticationMethods/userRegistrationDetails",
        "value": rows,
    }


@dataclass(frozen=True, slots=True)
class SignInQuirks:
    """Who signs in how on which day (days as indexes from the demo's first day)."""

    single_factor: dict[str, range] = field(default_factory=dict)
    legacy: dict[str, range] = field(default_factory=dict)


def _sign_in(
    rng: random.Random, user: User, when: datetime, *, client: str, requirement: str
) -> dict[str, Any]:
    return {
        "id": _uuid(rng),
        "createdDateTime": format_utc(when),
        "userDisplayName": user.display_name,
        "userPrincipalName": user.upn,
        "userId": user.id,
        "appId": "00000002-0000-0ff1-ce00-000000000000",
        "appDisplayName": "Office 365 Exchange Online",
        "ipAddress": f"198.51.100.{rng.randrange(1, 255)}",
        "clientAppUsed": client,
        "correlationId": _uuid(rng),
        "conditionalAccessStatus": "success" if requirement.startswith("multi") else "notApplied",
        "isInteractive": True,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes": [],
        "riskEventTypes_v2": [],
        "resourceDisplayName": "Office 365 Exchange Online",
        "resourceId": "00000002-0000-0ff1-ce00-000000000000",
        "authenticationRequirement": requirement,
        "status": {"errorCode": 0, "failureReason": "Other.", "additionalDetails": None},
        "deviceDetail": {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": "Windows 10",
            "browser": "Edge 120.0.0" if client == "Browser" else "",
            "isCompliant": False,
            "isManaged": False,
            "trustType": "",
        },
        "location": {"city": "Portland", "state": "Oregon", "countryOrRegion": "US"},
        "appliedConditionalAccessPolicies": [],
    }


def entra_signins(
    *, users: list[User], first_day: datetime, days: range, seed: int, quirks: SignInQuirks
) -> dict[str, Any]:
    """A Graph ``/auditLogs/signIns`` response for the given days: everyone signs in daily.

    Days are indexes from ``first_day``; newest sign-in first, as Graph lists them.
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    events: list[tuple[datetime, dict[str, Any]]] = []
    for day in days:
        midnight = first_day + timedelta(days=day)
        for user in users:
            when = midnight + timedelta(hours=7, seconds=rng.randrange(11 * 3600))
            client, requirement = "Browser", "multiFactorAuthentication"
            if day in quirks.single_factor.get(user.upn, range(0)):
                requirement = "singleFactorAuthentication"
            events.append((when, _sign_in(rng, user, when, client=client, requirement=requirement)))
            if day in quirks.legacy.get(user.upn, range(0)):
                late = when + timedelta(minutes=rng.randrange(5, 50))
                events.append(
                    (
                        late,
                        _sign_in(
                            rng,
                            user,
                            late,
                            client="IMAP4",
                            requirement="singleFactorAuthentication",
                        ),
                    )
                )
    events.sort(key=lambda item: item[0], reverse=True)
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",
        "value": [event for _, event in events],
    }


# --- Nessus --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One Nessus plugin result."""

    plugin_id: int
    name: str
    severity: int
    cvss3: float
    cves: tuple[str, ...] = ()
    port: int = 0
    service: str = "general"
    family: str = "Windows : Microsoft Bulletins"


SCAN_INFO = Finding(19506, "Nessus Scan Information", 0, 0.0, family="Settings")
RDP_SERVICE = Finding(
    10940, "Remote Desktop Protocol Service Detection", 0, 0.0, port=3389, service="msrdp",
    family="Windows",
)  # fmt: skip


def _report_item(finding: Finding) -> str:
    severity_name = ("None", "Low", "Medium", "High", "Critical")[finding.severity]
    parts = [
        f'<ReportItem port="{finding.port}" svc_name="{finding.service}" protocol="tcp" '
        f'severity="{finding.severity}" pluginID="{finding.plugin_id}" '
        f'pluginName="{escape(finding.name)}" pluginFamily="{escape(finding.family)}">',
        f"<plugin_name>{escape(finding.name)}</plugin_name>",
        f"<risk_factor>{severity_name}</risk_factor>",
    ]
    if finding.severity:
        parts.append(f"<cvss3_base_score>{finding.cvss3:.1f}</cvss3_base_score>")
    parts.extend(f"<cve>{cve}</cve>" for cve in finding.cves)
    parts.append("<plugin_output>claimready demo</plugin_output></ReportItem>")
    return "".join(parts)


def nessus_report(
    *,
    hosts: list[Host],
    started: datetime,
    seed: int,
    findings: dict[str, list[Finding]],
    name: str,
    public: dict[str, str] | None = None,
) -> str:
    """A ``.nessus`` v2 report of a credentialed scan of ``hosts`` started at ``started``.

    ``findings`` maps host names to their open results (besides the scan information);
    ``public`` gives the internet-facing address of hosts that have one (every other
    host is scanned at an internal 10.0.x.x address).
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    out = [
        '<?xml version="1.0" ?>\n<NessusClientData_v2>\n<Policy><policyName>'
        "Internal credentialed weekly</policyName></Policy>\n"
        f'<Report name="{escape(name)}" xmlns:cm="http://www.nessus.org/cm">\n'
    ]
    moment = started
    for host in hosts:
        begun = moment
        moment += timedelta(seconds=60 + rng.randrange(60))
        os_name = (
            "Microsoft Windows Server 2022 Standard" if host.server else "Microsoft Windows 11 Pro"
        )
        tags = {
            "HOST_START_TIMESTAMP": str(int(begun.timestamp())),
            "HOST_START": begun.strftime("%a %b %d %H:%M:%S %Y"),
            "host-fqdn": host.fqdn,
            "hostname": host.name,
            "netbios-name": host.name.upper(),
            "host-ip": (public or {}).get(
                host.name, f"10.0.{host.index // 250}.{host.index % 250 + 1}"
            ),
            "operating-system": os_name,
            "system-type": "general-purpose",
            "Credentialed_Scan": "true",
            "host-uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, host.fqdn)),
            "HOST_END_TIMESTAMP": str(int(moment.timestamp())),
            "HOST_END": moment.strftime("%a %b %d %H:%M:%S %Y"),
        }
        out.append(f'<ReportHost name="{host.fqdn}"><HostProperties>')
        out.extend(f'<tag name="{k}">{escape(v)}</tag>' for k, v in tags.items())
        out.append("</HostProperties>")
        out.extend(_report_item(f) for f in (SCAN_INFO, *findings.get(host.name, [])))
        out.append("</ReportHost>\n")
    out.append("</Report>\n</NessusClientData_v2>\n")
    return "".join(out)


# --- backups -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupJob:
    """A Veeam job that runs every night."""

    id: str
    name: str
    start_hour: int


def veeam_sessions(
    *,
    jobs: list[BackupJob],
    first_day: datetime,
    nights: range,
    seed: int,
    failed: dict[str, range],
) -> dict[str, Any]:
    """A ``GET /api/v1/sessions`` response (newest first) for the given nights.

    Every job runs each night and ends before midnight UTC; a job whose id is in
    ``failed`` fails on those nights.
    """
    sessions: list[dict[str, Any]] = []
    for night in nights:
        midnight = first_day + timedelta(days=night)
        for number, job in enumerate(jobs):
            rng = random.Random(seed * 100_003 + night * 31 + number)  # noqa: S311 - demo data
            created = midnight + timedelta(hours=job.start_hour, seconds=rng.randrange(60))
            failing = night in failed.get(job.id, range(0))
            took = timedelta(minutes=rng.randrange(4, 12) if failing else rng.randrange(20, 55))
            sessions.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "name": job.name,
                    "jobId": job.id,
                    "sessionType": "BackupJob",
                    "creationTime": format_utc(created),
                    "endTime": format_utc(created + took),
                    "state": "Stopped",
                    "progressPercent": 100,
                    "result": {
                        "result": "Failed" if failing else "Success",
                        "message": "Error: Failed to connect to the repository" if failing else "",
                        "isCanceled": False,
                    },
                    "resourceId": job.id,
                    "resourceReference": f"/api/v1/jobs/{job.id}",
                    "parentSessionId": None,
                    "usn": night * 10 + number + 100_000,
                }
            )
    sessions.sort(key=lambda s: s["creationTime"], reverse=True)
    return {"data": sessions, "pagination": {"total": len(sessions), "count": len(sessions)}}


def restore_register(
    tests: list[tuple[BackupJob, datetime]], *, verified_by: str
) -> dict[str, Any]:
    """claimready's restore-test records: every test recorded so far."""
    return {
        "restore_tests": [
            {
                "job": job.name,
                "tested_at": format_utc(at),
                "result": "success",
                "restored_items": "restored to the isolated lab, checked by the owner",
                "verified_by": verified_by,
                "job_id": f"veeam:{job.id}",
            }
            for job, at in tests
        ]
    }


# --- Wazuh, osquery, RMM -------------------------------------------------------------------


def wazuh_alerts(*, servers: list[Host], day: datetime, seed: int, silent: frozenset[str]) -> str:
    """The manager's ``alerts.json`` for one UTC day: each server's events, the last at 23:5x."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    lines: list[tuple[datetime, str]] = []
    rules = (
        ("60106", 3, "Windows Logon Success.", ["windows", "authentication_success"]),
        ("60137", 5, "Windows User Logoff.", ["windows"]),
        ("61138", 5, "New Windows Service Created.", ["windows", "policy_changed"]),
        ("60122", 5, "Logon Failure - Unknown user or bad password.", ["windows"]),
    )  # fmt: skip
    for number, host in enumerate(servers, start=1):
        if host.name in silent:
            continue
        times = sorted(day + timedelta(seconds=rng.randrange(86_000)) for _ in range(5))
        times.append(day + timedelta(hours=23, minutes=50, seconds=rng.randrange(540)))
        for when in times:
            rule_id, level, description, groups = rules[rng.randrange(len(rules))]
            alert = {
                "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{rng.randrange(1000):03d}+0000",
                "rule": {
                    "level": level,
                    "description": description,
                    "id": rule_id,
                    "firedtimes": 1,
                    "mail": False,
                    "groups": groups,
                },
                "agent": {"id": f"{number:03d}", "name": host.name, "ip": f"10.0.0.{host.index}"},
                "manager": {"name": "wazuh-manager"},
                "id": f"{int(when.timestamp())}.{rng.randrange(10**6)}",
                "full_log": description,
                "decoder": {"name": "windows_eventchannel"},
                "location": "EventChannel",
            }
            lines.append((when, json.dumps(alert, separators=(",", ":"))))
    lines.sort(key=lambda item: item[0])
    return "".join(f"{line}\n" for _, line in lines)


def osquery_results(*, hosts: list[Host], at: datetime, unencrypted: frozenset[str]) -> str:
    """``osqueryd.results.log`` lines of one snapshot run of the Windows posture queries."""
    calendar = at.strftime("%a %b %d %H:%M:%S %Y UTC")
    lines = []
    for host in hosts:
        head = {
            "hostIdentifier": host.name,
            "calendarTime": calendar,
            "unixTime": int(at.timestamp()),
            "epoch": 0,
            "counter": 0,
            "numerics": False,
            "decorations": {"hostname": host.fqdn},
            "action": "snapshot",
        }
        protected = "0" if host.name in unencrypted else "1"
        snapshots = {
            "bitlocker_info": [
                {
                    "device_id": "\\\\?\\Volume{" + f"{host.index:08x}" + "}\\",
                    "drive_letter": "C:",
                    "persistent_volume_id": "",
                    "conversion_status": protected,
                    "protection_status": protected,
                    "encryption_method": "XTS_AES_128" if protected == "1" else "None",
                }
            ],
            "pack_windows-hardening_windows_security_center": [
                {
                    "firewall": "Good",
                    "autoupdate": "Good",
                    "antivirus": "Good",
                    "antispyware": "Good",
                    "internet_settings": "Good",
                    "windows_security_center_service": "Good",
                    "user_account_control": "Good",
                }
            ],
        }
        for name, rows in snapshots.items():
            lines.append(json.dumps({"name": name, **head, "snapshot": rows}))
    return "".join(f"{line}\n" for line in lines)


def ninjaone_devices(*, hosts: list[Host], at: datetime, seed: int) -> list[dict[str, Any]]:
    """A NinjaOne ``/v2/devices-detailed`` response; each agent checked in shortly before ``at``."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    devices = []
    for host in hosts:
        contact = (at - timedelta(seconds=rng.randrange(60, 7200))).timestamp()
        devices.append(
            {
                "id": 1000 + host.index,
                "parentDeviceId": None,
                "organizationId": 7,
                "locationId": 1,
                "nodeClass": "WINDOWS_SERVER" if host.server else "WINDOWS_WORKSTATION",
                "approvalStatus": "APPROVED",
                "offline": False,
                "displayName": host.name.upper(),
                "systemName": host.name.upper(),
                "dnsName": host.fqdn,
                "created": 1_700_000_000.0 + host.index * 3600,
                "lastContact": contact,
                "lastUpdate": contact,
                "os": {
                    "manufacturer": "Microsoft Corporation",
                    "name": "Windows Server 2022 Standard"
                    if host.server
                    else "Windows 11 Professional Edition",
                    "architecture": "64-bit",
                    "buildNumber": "20348" if host.server else "22631",
                    "releaseId": "21H2" if host.server else "23H2",
                },
                "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 7010"},
            }
        )
    return devices
