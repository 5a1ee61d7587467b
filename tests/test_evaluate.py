"""The EDR control on the sample and on a generated fleet, at several moments."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from claimready.app import App
from claimready.controls.definitions import EDR_HEALTHY
from claimready.controls.engine import AssetStatus, ControlResult, aggregate
from claimready.controls.models import FAIL, PASS, UNVERIFIED
from claimready.controls.service import evaluate_control, latest_evaluations
from claimready.db.engine import transaction
from claimready.demo.generate import FleetFaults, defender_machines
from claimready.evidence.service import ingest_file
from claimready.tenants.models import Tenant
from claimready.timeutil import parse_utc


def _evaluate(app: App, tenant: Tenant, at: datetime) -> ControlResult:
    with transaction(app.sessions) as session:
        return evaluate_control(
            session=session,
            tenant_id=tenant.id,
            facts_dir=app.settings.facts_dir,
            control=EDR_HEALTHY,
            at=at,
        )


def test_sample_fails_with_one_unverified_machine(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    tenant = make_tenant()
    result = ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    with zipfile.ZipFile(defender_sample) as archive:
        machines = json.loads(archive.read("machines/machines.json"))["value"]
    not_onboarded = sum(m["onboardingStatus"] != "Onboarded" for m in machines)
    unreadable = sum(
        m["onboardingStatus"] == "Onboarded" and m["healthStatus"] == "Active" for m in machines
    )
    evaluated = _evaluate(app, tenant, result.collected_at + timedelta(hours=1))
    assert (evaluated.in_scope, evaluated.failing, evaluated.unverified) == (
        len(machines),
        not_onboarded,
        unreadable,
    )
    assert evaluated.passing == 0
    assert evaluated.status == FAIL
    assert evaluated.evidence_ids == [result.evidence_id]


def test_generated_fleet_at_several_moments(
    app: App, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant()
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    document = defender_machines(
        count=100, now=now, seed=7, faults=FleetFaults(inactive=1, stale=1), domain="acme.example"
    )
    path = tmp_path / "machines.json"
    path.write_text(json.dumps(document))
    ingest_file(app=app, tenant_slug="acme", path=path)
    at = now + timedelta(hours=1)
    fresh = sum(
        m["healthStatus"] == "Active"
        and m["onboardingStatus"] == "Onboarded"
        and parse_utc(m["lastSeen"]) >= at - timedelta(hours=26)
        for m in document["value"]
    )
    result = _evaluate(app, tenant, at)
    assert (result.in_scope, result.passing, result.failing) == (100, fresh, 100 - fresh)
    assert result.status == PASS  # 98 of 100 is exactly the threshold
    # Before any evidence described the fleet: nothing in scope, never a silent pass.
    before = _evaluate(app, tenant, now - timedelta(days=1))
    assert (before.status, before.in_scope) == (UNVERIFIED, 0)
    # Once the evidence is older than 26 hours, nothing is verified any more.
    later = _evaluate(app, tenant, now + timedelta(hours=27))
    assert (later.status, later.unverified, later.passing) == (UNVERIFIED, 100, 0)


def test_evaluations_are_stored_and_latest_is_reported(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    from claimready.controls.service import evaluate_all

    tenant = make_tenant()
    ingest_file(app=app, tenant_slug="acme", path=defender_sample)
    with transaction(app.sessions) as session:
        evaluate_all(
            session=session,
            tenant_id=tenant.id,
            facts_dir=app.settings.facts_dir,
            at=datetime.now(UTC),
        )
        stored = latest_evaluations(session=session, tenant_id=tenant.id)
        assert [(e.control_id, e.status) for e in stored] == [("edr-healthy", FAIL)]
        assert stored[0].details["evidence_ids"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([PASS] * 98 + [FAIL] * 2, PASS),
        ([PASS] * 97 + [FAIL] * 3, FAIL),
        ([PASS] * 97 + [UNVERIFIED] * 3, UNVERIFIED),
        ([PASS] * 96 + [UNVERIFIED, FAIL, FAIL, FAIL], FAIL),
        ([], UNVERIFIED),
    ],
)
def test_threshold_rule(statuses: list[str], expected: str) -> None:
    assets = [AssetStatus(i, s, "", ()) for i, s in enumerate(statuses)]
    result = aggregate(control=EDR_HEALTHY, at=datetime(2026, 1, 1, tzinfo=UTC), assets=assets)
    assert result.status == expected
