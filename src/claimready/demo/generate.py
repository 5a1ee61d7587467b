"""Generated evidence for the demo, in the exact shape the real tools export.

Deterministic for a seed and a moment, so the demo tells the same story on
every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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


def organization_records(*, as_of: datetime, organization: str, domain: str) -> dict[str, Any]:
    """A records file in which every organizational control is met at ``as_of``."""
    return {
        "claimready_records": 1,
        "organization": organization,
        "as_of": format_utc(as_of),
        "training": {"completed_at": format_utc(as_of - timedelta(days=40)), "completion_rate": 96},
        "phishing": {"tested_at": format_utc(as_of - timedelta(days=20)), "click_rate": 3.5},
        "incident_response": {
            "plan_approved_at": format_utc(as_of - timedelta(days=60)),
            "tabletop_at": format_utc(as_of - timedelta(days=50)),
        },
        "pen_test": {
            "performed_at": format_utc(as_of - timedelta(days=90)),
            "report_sha256": "0" * 64,
        },
        "backups": {"immutable": True, "offline_copy": True},
        "logging": {"retention_days": 365},
        "monitoring": {
            "provider": "Example MDR",
            "always_on": True,
            "contract_start": format_utc(as_of - timedelta(days=30)),
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
