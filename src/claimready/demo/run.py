"""Build the demo: an operator's client organizations, their evidence and evaluations."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from claimready.app import App
from claimready.controls.engine import ControlResult
from claimready.controls.service import evaluate_all
from claimready.db.engine import transaction
from claimready.db.migrate import upgrade
from claimready.demo.generate import FleetFaults, defender_machines
from claimready.errors import ConflictError
from claimready.evidence.service import IngestResult, ingest_file
from claimready.settings import Settings
from claimready.tenants import service as tenants
from claimready.timeutil import utcnow

MARKER = ".claimready-demo"
FLEET_SIZE = 120
SEED = 20261127


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What the demo built, for the closing summary."""

    data_dir: Path
    ingests: list[IngestResult]
    evaluations: dict[str, list[ControlResult]]
    month_ago: datetime


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


def run_demo(
    *, settings: Settings, step: Callable[[str], None], now: datetime | None = None
) -> DemoOutcome:
    """Create tenants, ingest generated and sample evidence, and evaluate controls."""
    moment = now or utcnow()
    month_ago = moment - timedelta(days=30)
    app = App(settings=settings)
    try:
        step("creating the database")
        upgrade(app.engine)
        with transaction(app.sessions) as session:
            tenants.create(session=session, slug="acme-dental", name="Acme Dental Group")
            tenants.create(session=session, slug="globex-lab", name="Globex Research Lab")
        inputs = settings.data_dir / "inputs"
        older = _write_json(
            inputs / "acme-defender-machines-30-days-ago.json",
            _fleet(month_ago, FleetFaults(inactive=1)),
        )
        current = _write_json(
            inputs / "acme-defender-machines-today.json",
            _fleet(moment, FleetFaults(inactive=2, not_onboarded=1, stale=1)),
        )
        ingests = []
        for tenant, path in (("acme-dental", older), ("acme-dental", current)):
            step(f"ingesting {path.name}")
            ingests.append(
                ingest_file(app=app, tenant_slug=tenant, path=path, source_kind="defender")
            )
        step("ingesting the Defender sample export")
        ingests.append(ingest_file(app=app, tenant_slug="globex-lab", path=sample_path()))
        step("evaluating controls")
        evaluated_now = utcnow()  # after the ingests, so their collection times are covered
        evaluations = {
            "acme-dental (30 days ago)": _evaluate(
                app, "acme-dental", month_ago + timedelta(hours=1)
            ),
            "acme-dental (now)": _evaluate(app, "acme-dental", evaluated_now),
            "globex-lab (now)": _evaluate(app, "globex-lab", evaluated_now),
        }
    finally:
        app.close()
    return DemoOutcome(
        data_dir=settings.data_dir, ingests=ingests, evaluations=evaluations, month_ago=month_ago
    )


def _fleet(now: datetime, faults: FleetFaults) -> dict[str, object]:
    return defender_machines(
        count=FLEET_SIZE, now=now, seed=SEED, faults=faults, domain="acme-dental.example"
    )


def _evaluate(app: App, slug: str, at: datetime) -> list[ControlResult]:
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=slug)
        return evaluate_all(
            session=session, tenant_id=tenant.id, facts_dir=app.settings.facts_dir, at=at
        )
