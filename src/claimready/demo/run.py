"""Build the demo: an operator's client organizations, a year of evidence, and evaluations.

Acme Dental (120 machines, 80 accounts) is fed for a year through the real
connectors, each file in the exact shape the tool exports and ingested like
any export:

| connector | cadence | controls it feeds |
| --- | --- | --- |
| ``defender`` machines | daily, 06:00 | edr-coverage |
| ``entra_registration`` | every other day, 05:30 | mfa-*, privileged-count |
| ``entra_signins`` | every other day, the two days before | mfa-*, dormant-accounts |
| ``nessus`` | weekly | critical-patched, kev-remediated, scan-cadence, external-exposure |
| ``kev`` (the CISA catalog) | once | kev-remediated |
| ``veeam`` sessions | daily, the last ten nights | backups-recent |
| ``restore-test`` register | after each quarterly test | restore-tested |
| ``wazuh-alerts`` (servers) | daily, the day before | logging-coverage |
| ``osquery`` (bitlocker, security center) | weekly | disk-encryption |
| ``mapping:ninjaone`` RMM | weekly | inventory-complete, end-of-life-software |
| ``records`` | after each organizational event | the organization-level controls |

Every feed starts before the year, so a control passes from its first day
unless an incident of :data:`INCIDENTS` says otherwise; that table lists every
fault the demo injects with the exact gaps it must produce. Globex Lab gets
the real Defender sample export.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from itertools import groupby
from pathlib import Path

from claimready.app import App
from claimready.controls.service import EvaluateRequest, WindowEvaluation, evaluate
from claimready.db.engine import transaction
from claimready.db.migrate import upgrade
from claimready.demo import generate as gen
from claimready.errors import ConflictError
from claimready.evidence.service import IngestItem, IngestResult, ingest_file, ingest_files
from claimready.settings import Settings
from claimready.tenants import service as tenants
from claimready.timeutil import UTC, utcnow

MARKER = ".claimready-demo"
TENANT = "acme-dental"
ORGANIZATION = "Acme Dental Group"
DOMAIN = "acme-dental.example"
FLEET_SIZE = 120
USERS = 80
ADMINS = 4
SEED = 20261127
DAYS = 365
EXPORT_HOUR = 6
EDR_CONTROL = "edr-coverage"
KEV_CVE = "CVE-2024-21338"  # listed by CISA on 2024-03-04

# --- the injected incidents: days are counted from the demo's first day (day 0) -------------

OUTAGE = range(100, 105)  # no Defender export on these days
INACTIVE = range(200, 210)  # the last server's EDR sensor is inactive in these exports
ADMIN_WITHOUT_MFA = range(60, 71)  # registration exports (even days) show no MFA method
ADMIN_SINGLE_FACTOR = range(60, 72)  # ... and the admin signs in with a password alone
LEGACY_AUTH = range(151, 158)  # a receptionist's mail client signs in over IMAP
CRITICAL_ON_SERVER = range(119, 134)  # weekly scans in this range find a critical flaw
KEV_OPEN = range(182, 204)  # scans in this range find a known exploited CVE on a laptop
RDP_OPEN = range(245, 253)  # scans in this range find RDP open on a server
BACKUP_FAILING = range(230, 234)  # nights on which the file-server backup fails
RESTORE_LATE = 170  # the database's quarterly restore test, due by day 147
WAZUH_SILENT = range(280, 284)  # days on which one server sends no log event

ADMIN = f"admin.amelia@{DOMAIN}"
RECEPTIONIST = f"kara.adams@{DOMAIN}"
INACTIVE_SERVER = f"srv-{FLEET_SIZE:03d}"
CRITICAL_SERVER = "srv-030"
KEV_LAPTOP = "ws-041"
RDP_SERVER = "srv-020"
#: The remote-access server is published at a public address (a documentation range).
RDP_SERVER_ADDRESS = "203.0.113.20"
SILENT_SERVER = "srv-050"


@dataclass(frozen=True, slots=True)
class ExpectedGap:
    """A gap an incident must produce: ``[first, end)`` in days from the first day."""

    control: str
    status: str
    first: int
    end: int


@dataclass(frozen=True, slots=True)
class Incident:
    """One fault the demo injects and the exact gaps it produces."""

    title: str
    gaps: tuple[ExpectedGap, ...]


def _gap(control: str, status: str, first: int, end: int) -> ExpectedGap:
    return ExpectedGap(control, status, first, end)


#: The sign-in rules fail while the last bad sign-in is at most 30 days old: it happens
#: during its day, so the first midnight more than 30 days later is 31 days after that day.
AFTER_LAST_SIGN_IN = 31

# Each gap opens at the first midnight that sees the fault in the evidence and closes
# at the first midnight that sees it gone (for the 30-day sign-in rules, the first
# midnight at which the last bad sign-in is more than 30 days old).
INCIDENTS: tuple[Incident, ...] = (
    Incident(
        "admin account without MFA, signing in with a password alone (days 60-71)",
        (
            _gap("mfa-privileged", "fail", 61, 73),
            _gap("mfa-email-saas", "fail", 61, 73),
            _gap("mfa-remote-access", "fail", 61, ADMIN_SINGLE_FACTOR[-1] + AFTER_LAST_SIGN_IN),
        ),
    ),
    Incident(
        "EDR export outage: no Defender export (days 100-104)",
        (_gap(EDR_CONTROL, "unverified", 101, 106),),
    ),
    Incident(
        f"critical vulnerability open on server {CRITICAL_SERVER} (scans of days 119-133)",
        (_gap("critical-patched", "fail", 120, 141),),
    ),
    Incident(
        f"late restore test of the practice database (due day 147, done day {RESTORE_LATE})",
        (_gap("restore-tested", "fail", 148, 171),),
    ),
    Incident(
        "legacy IMAP sign-ins by a receptionist's mail client (days 151-157)",
        (
            _gap("mfa-remote-access", "fail", 152, LEGACY_AUTH[-1] + AFTER_LAST_SIGN_IN),
            _gap("mfa-email-saas", "fail", 152, LEGACY_AUTH[-1] + AFTER_LAST_SIGN_IN),
        ),
    ),
    Incident(
        f"{KEV_CVE} (CISA KEV) open on {KEV_LAPTOP} (scans of days 182-203)",
        (_gap("kev-remediated", "fail", 183, 211),),
    ),
    Incident(
        f"EDR sensor inactive on server {INACTIVE_SERVER} (days 200-209)",
        (_gap(EDR_CONTROL, "fail", 201, 211),),
    ),
    Incident(
        "file-server backup failing (nights 230-233)",
        (_gap("backups-recent", "fail", 232, 235),),
    ),
    Incident(
        f"RDP exposed on server {RDP_SERVER} (scans of days 245-252)",
        (_gap("external-exposure", "fail", 246, 260),),
    ),
    Incident(
        f"server {SILENT_SERVER} sends no logs (days 280-283)",
        (
            _gap("logging-coverage", "fail", 281, 282),
            _gap("logging-coverage", "unverified", 282, 285),
        ),
    ),
)

#: Baseline controls no demo connector feeds (they stay unverified, and say why).
UNFED: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What the demo built, for the closing summary."""

    data_dir: Path
    ingests: list[IngestResult]
    evaluations: dict[str, WindowEvaluation]
    first_day: datetime


def prepare_dir(path: Path) -> None:
    """Empty a previous demo directory; refuse to touch a directory that is not one."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise ConflictError(
                f"{path} exists and is not a claimready demo directory; choose another with --dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("created by claimready demo; removed by the next demo run\n")


def _data(name: str) -> Path:
    return Path(str(resources.files("claimready.demo") / "data" / name))


def sample_path() -> Path:
    """The bundled Defender sample export."""
    return _data("defender-sample.zip")


def kev_catalog_path() -> Path:
    """The bundled copy of CISA's Known Exploited Vulnerabilities catalog."""
    return _data("known_exploited_vulnerabilities.json")


def first_day(now: datetime) -> datetime:
    """Midnight UTC of the demo year's first day, for a demo built at ``now``."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=DAYS)


def expected_gaps(start: datetime) -> dict[str, list[tuple[str, datetime, datetime]]]:
    """Every gap the incidents must produce, per control: (status, start, end), in order."""
    found: dict[str, list[tuple[str, datetime, datetime]]] = {}
    for incident in INCIDENTS:
        for gap in incident.gaps:
            found.setdefault(gap.control, []).append(
                (gap.status, start + timedelta(days=gap.first), start + timedelta(days=gap.end))
            )
    return {control: sorted(gaps, key=lambda g: g[1]) for control, gaps in found.items()}


# --- the year of evidence -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Planned:
    """One export file: when the tool wrote it, and which connector reads it."""

    moment: datetime
    kind: str
    path: Path


def _write(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, separators=(",", ":"))
    path.write_text(text)
    return path


class _Year:
    """Writes every export of the year under ``inputs`` and lists them."""

    def __init__(self, inputs: Path, start: datetime) -> None:
        self.inputs = inputs
        self.start = start
        self.hosts = gen.fleet(count=FLEET_SIZE, domain=DOMAIN)
        self.servers = [h for h in self.hosts if h.server]
        self.users = gen.directory_users(count=USERS, admins=ADMINS, seed=SEED, domain=DOMAIN)
        self.jobs = [
            gen.BackupJob("9b5a2c1e-6f0d-4b7e-9a43-3c2e8d1f7a10", "Practice database", 21),
            gen.BackupJob("3f6e1d2c-8a4b-4c5d-9e0f-1a2b3c4d5e6f", "File server", 22),
            gen.BackupJob("c0ffee00-1234-4abc-8def-00000000beef", "Imaging archive", 22),
        ]

    def day(self, index: int, hours: float = 0) -> datetime:
        return self.start + timedelta(days=index, hours=hours)

    def _file(self, name: str, moment: datetime) -> Path:
        return self.inputs / f"acme-{moment.date().isoformat()}-{name}"

    def plan(self) -> Iterator[_Planned]:
        yield from self.defender()
        yield from self.identity()
        yield from self.scans()
        yield from self.backups()
        yield from self.hosts_posture()
        yield from self.records()

    def defender(self) -> Iterator[_Planned]:
        for index in range(-8, DAYS):
            if index in OUTAGE:
                continue
            moment = self.day(index, EXPORT_HOUR)
            faults = gen.FleetFaults(inactive=1 if index in INACTIVE else 0)
            document = gen.defender_machines(
                count=FLEET_SIZE,
                now=moment,
                seed=SEED,
                faults=faults,
                domain=DOMAIN,
                max_lag_minutes=60,
            )
            yield _Planned(
                moment, "defender", _write(self._file("defender.json", moment), document)
            )

    def identity(self) -> Iterator[_Planned]:
        for index in range(-2, DAYS, 2):
            moment = self.day(index, 5.5)
            without = frozenset({ADMIN}) if index in ADMIN_WITHOUT_MFA else frozenset[str]()
            document = gen.entra_registration(users=self.users, at=moment, without_mfa=without)
            path = _write(self._file("entra-registration.json", moment), document)
            yield _Planned(moment, "entra_registration", path)
        quirks = gen.SignInQuirks(
            single_factor={ADMIN: ADMIN_SINGLE_FACTOR}, legacy={RECEPTIONIST: LEGACY_AUTH}
        )
        for last in range(-1, DAYS - 1, 2):
            moment = self.day(last + 1, 4)
            document = gen.entra_signins(
                users=self.users,
                first_day=self.start,
                days=range(last - 1, last + 1),
                seed=SEED + last,
                quirks=quirks,
            )
            yield _Planned(
                moment, "entra_signins", _write(self._file("entra-signins.json", moment), document)
            )

    def _findings(self, index: int) -> dict[str, list[gen.Finding]]:
        findings: dict[str, list[gen.Finding]] = {}

        def add(host: str, finding: gen.Finding) -> None:
            findings.setdefault(host, []).append(finding)

        if index in CRITICAL_ON_SERVER:
            add(CRITICAL_SERVER, _CRITICAL_SERVER_FLAW)
        if index in KEV_OPEN:
            add(KEV_LAPTOP, _KEV_FLAW)
        if index in RDP_OPEN:
            add(RDP_SERVER, gen.RDP_SERVICE)
        for host, weeks in _WORKSTATION_CRITICALS.items():
            if index in weeks:
                add(host, _BROWSER_FLAW)
        return findings

    def scans(self) -> Iterator[_Planned]:
        yield _Planned(self.day(-8), "kev", kev_catalog_path())
        for index in range(-7, DAYS, 7):
            moment = self.day(index, 1)
            report = gen.nessus_report(
                hosts=self.hosts,
                started=moment,
                seed=SEED + index,
                findings=self._findings(index),
                name=f"Weekly internal scan {moment.date().isoformat()}",
                public={RDP_SERVER: RDP_SERVER_ADDRESS},
            )
            yield _Planned(moment, "nessus", _write(self._file("scan.nessus", moment), report))

    def backups(self) -> Iterator[_Planned]:
        failing = {self.jobs[1].id: BACKUP_FAILING}
        for night in range(-1, DAYS):
            moment = self.day(night + 1, EXPORT_HOUR)
            document = gen.veeam_sessions(
                jobs=self.jobs,
                first_day=self.start,
                nights=range(night - 9, night + 1),
                seed=SEED,
                failed=failing,
            )
            yield _Planned(
                moment, "veeam", _write(self._file("veeam-sessions.json", moment), document)
            )
        database, others = self.jobs[0], self.jobs[1:]
        tests: list[tuple[gen.BackupJob, datetime]] = []
        for index in (-30, 55, 140, RESTORE_LATE, 225, 310):
            moment = self.day(index, 10)
            if index != 140:
                tests.append((database, moment))
            if index != RESTORE_LATE:
                tests.extend((job, moment) for job in others)
            document = gen.restore_register(tests, verified_by=f"it.lead@{DOMAIN}")
            yield _Planned(
                moment, "restore-test", _write(self._file("restore-tests.json", moment), document)
            )

    def hosts_posture(self) -> Iterator[_Planned]:
        for index in range(-1, DAYS):
            day = self.day(index)
            silent = frozenset({SILENT_SERVER}) if index in WAZUH_SILENT else frozenset[str]()
            text = gen.wazuh_alerts(servers=self.servers, day=day, seed=SEED + index, silent=silent)
            moment = self.day(index + 1, 0.1)
            yield _Planned(
                moment, "wazuh-alerts", _write(self._file("wazuh-alerts.json", moment), text)
            )
        for index in range(-4, DAYS, 7):
            moment = self.day(index, 4)
            text = gen.osquery_results(hosts=self.hosts, at=moment, unencrypted=_UNENCRYPTED)
            yield _Planned(
                moment, "osquery", _write(self._file("osqueryd.results.log", moment), text)
            )
        for index in range(-2, DAYS, 7):
            moment = self.day(index, 5)
            document = gen.ninjaone_devices(hosts=self.hosts, at=moment, seed=SEED + index)
            yield _Planned(
                moment,
                "mapping:ninjaone",
                _write(self._file("ninjaone-devices.json", moment), document),
            )

    def records(self) -> Iterator[_Planned]:
        # the latest event of each kind, as (day, hour); later events replace earlier ones
        events = {
            "training": [(-40, 0), (300, 0)],
            "phishing": [(-20, 0), (60, 0), (140, 0), (220, 0), (300, 0)],
            "plan_approved": [(-60, 0), (270, 0)],
            "tabletop": [(-50, 0), (280, 0)],
            "pen_test": [(-90, 0), (250, 0)],
        }
        for index in (-1, 60, 140, 220, 250, 270, 280, 300):
            moment = self.day(index, 12)

            def latest(kind: str, upto: int = index) -> datetime:
                day, _ = max(e for e in events[kind] if e[0] <= upto)
                return self.day(day, 10)

            history = gen.OrganizationHistory(
                training=latest("training"),
                phishing=latest("phishing"),
                plan_approved=latest("plan_approved"),
                tabletop=latest("tabletop"),
                pen_test=latest("pen_test"),
                monitoring_since=self.day(-400),
            )
            document = gen.organization_records(
                as_of=moment, organization=ORGANIZATION, domain=DOMAIN, history=history
            )
            yield _Planned(moment, "records", _write(self._file("records.json", moment), document))


_CRITICAL_SERVER_FLAW = gen.Finding(
    204_772,
    "KB5040437: Windows Server 2022 Security Update (July 2024)",
    4,
    9.8,
    ("CVE-2024-38077",),
)
_KEV_FLAW = gen.Finding(
    190_481,
    "KB5034763: Windows 11 version 22H2 / 23H2 Security Update (February 2024)",
    3,
    7.8,
    (KEV_CVE,),
)
_BROWSER_FLAW = gen.Finding(
    212_345,
    "Google Chrome < 131.0.6778.204 Multiple Vulnerabilities",
    4,
    9.8,
    ("CVE-2024-12692",),
    family="Windows",
)
#: Laptops with a critical browser flaw for a few weeks: fewer than the 5% the control allows.
_WORKSTATION_CRITICALS = {
    "ws-012": range(21, 43),
    "ws-027": range(84, 99),
    "ws-066": range(294, 316),
}
#: Laptops whose disk is not encrypted: fewer than the 5% the control allows.
_UNENCRYPTED = frozenset({"ws-077", "ws-093"})


def _month(elapsed: timedelta) -> int:
    """Which of the demo year's twelve months ``elapsed`` after its first day falls in."""
    return max(0, min(11, elapsed.days * 12 // DAYS))


def _evaluate(app: App, tenant: str, as_of: datetime, window: timedelta) -> WindowEvaluation:
    return evaluate(
        app=app, request=EvaluateRequest(tenant_slug=tenant, as_of=as_of, window=window)
    )


#: How many times :func:`run_demo` calls ``step``.
STEPS = 16


def run_demo(
    *, settings: Settings, step: Callable[[str], None], now: datetime | None = None
) -> DemoOutcome:
    """Create tenants, ingest a year of generated evidence and a sample, and evaluate."""
    moment = now or utcnow()
    start = first_day(moment)
    app = App(settings=settings)
    try:
        step("creating the database")
        upgrade(app.engine)
        with transaction(app.sessions) as session:
            tenants.create(session=session, slug=TENANT, name=ORGANIZATION)
            tenants.create(session=session, slug="globex-lab", name="Globex Research Lab")
        step("generating a year of exports")
        planned = sorted(_Year(settings.data_dir / "inputs", start).plan(), key=lambda p: p.moment)
        ingests: list[IngestResult] = []
        for month, items in groupby(planned, key=lambda p: _month(p.moment - start)):
            step(f"ingesting Acme Dental's exports: month {month + 1} of 12")
            batch = [IngestItem(item.path, source_kind=item.kind) for item in items]
            ingests += ingest_files(app=app, tenant_slug=TENANT, items=batch)
        step("ingesting the Defender sample export")
        ingests.append(ingest_file(app=app, tenant_slug="globex-lab", path=sample_path()))
        step("evaluating controls over the year")
        evaluations = {
            TENANT: _evaluate(app, TENANT, start + timedelta(days=DAYS), timedelta(days=DAYS)),
            "globex-lab": evaluate(
                app=app, request=EvaluateRequest(tenant_slug="globex-lab", as_of=utcnow())
            ),
        }
    finally:
        app.close()
    return DemoOutcome(
        data_dir=settings.data_dir, ingests=ingests, evaluations=evaluations, first_day=start
    )
