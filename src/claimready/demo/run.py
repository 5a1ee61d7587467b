"""Build the demo: an operator's client organizations, a year of evidence, and evaluations.

Acme Dental gets a Defender machine export every day for a year (at 06:00
UTC) plus one organizational records file, with two injected gaps:

- an EDR outage: no export on :data:`OUTAGE` days, so the EDR control is
  ``unverified`` from the midnight after the first missing export until the
  midnight after the next export arrives;
- a server whose sensor is inactive on :data:`INACTIVE` days, so the EDR
  control (servers 100%) ``fail``s for the midnights that see those exports.

:func:`injected_gaps` gives their exact start and end. Globex Lab gets the
real Defender sample export.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from claimready.app import App
from claimready.controls.service import EvaluateRequest, WindowEvaluation, evaluate
from claimready.db.engine import transaction
from claimready.db.migrate import upgrade
from claimready.demo.generate import FleetFaults, defender_machines, organization_records
from claimready.errors import ConflictError
from claimready.evidence.service import IngestResult, ingest_file
from claimready.settings import Settings
from claimready.tenants import service as tenants
from claimready.timeutil import UTC, utcnow

MARKER = ".claimready-demo"
FLEET_SIZE = 120
SEED = 20261127
DAYS = 365
EXPORT_HOUR = 6
OUTAGE = range(100, 105)  # days after the first export without any export
INACTIVE = range(200, 210)  # days whose export shows the last server's sensor inactive
EDR_CONTROL = "edr-coverage"


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


def _write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


def sample_path() -> Path:
    """The bundled Defender sample export."""
    return Path(str(resources.files("claimready.demo") / "data" / "defender-sample.zip"))


def first_day(now: datetime) -> datetime:
    """Midnight UTC of the demo year's first day, for a demo built at ``now``."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=DAYS)


def injected_gaps(start: datetime) -> list[tuple[str, datetime, datetime]]:
    """The EDR control's gaps the demo injects: (status, start, end), in order."""
    day = timedelta(days=1)
    return [
        ("unverified", start + (OUTAGE.start + 1) * day, start + (OUTAGE.stop + 1) * day),
        ("fail", start + (INACTIVE.start + 1) * day, start + (INACTIVE.stop + 1) * day),
    ]


def _exports(inputs: Path, start: datetime) -> list[Path]:
    paths = []
    for index in range(DAYS):
        if index in OUTAGE:
            continue
        moment = start + timedelta(days=index, hours=EXPORT_HOUR)
        faults = FleetFaults(inactive=1 if index in INACTIVE else 0)
        document = defender_machines(
            count=FLEET_SIZE,
            now=moment,
            seed=SEED,
            faults=faults,
            domain="acme-dental.example",
            max_lag_minutes=60,
        )
        paths.append(
            _write_json(inputs / f"acme-defender-{moment.date().isoformat()}.json", document)
        )
    return paths


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
            tenants.create(session=session, slug="acme-dental", name="Acme Dental Group")
            tenants.create(session=session, slug="globex-lab", name="Globex Research Lab")
        inputs = settings.data_dir / "inputs"
        records = _write_json(
            inputs / "acme-records.json",
            organization_records(
                as_of=start, organization="Acme Dental Group", domain="acme-dental.example"
            ),
        )
        step("ingesting a year of Defender exports")
        ingests = [ingest_file(app=app, tenant_slug="acme-dental", path=records)]
        ingests.extend(
            ingest_file(app=app, tenant_slug="acme-dental", path=path, source_kind="defender")
            for path in _exports(inputs, start)
        )
        step("ingesting the Defender sample export")
        ingests.append(ingest_file(app=app, tenant_slug="globex-lab", path=sample_path()))
        step("evaluating controls over the year")
        end = start + timedelta(days=DAYS)
        evaluations = {
            "acme-dental": evaluate(
                app=app,
                request=EvaluateRequest(
                    tenant_slug="acme-dental", as_of=end, window=timedelta(days=DAYS)
                ),
            ),
            "globex-lab": evaluate(
                app=app,
                request=EvaluateRequest(tenant_slug="globex-lab", as_of=utcnow()),
            ),
        }
    finally:
        app.close()
    return DemoOutcome(
        data_dir=settings.data_dir, ingests=ingests, evaluations=evaluations, first_day=start
    )
