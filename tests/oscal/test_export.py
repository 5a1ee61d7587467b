"""OSCAL exports on a stored tenant: schema-valid, deterministic, citing stored evidence."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from claimready.app import App
from claimready.controls.service import EvaluateRequest
from claimready.db.engine import transaction
from claimready.errors import VerificationError
from claimready.evidence.models import Evidence
from claimready.evidence.service import ingest_file
from claimready.oscal.service import export
from claimready.oscal.validate import OSCAL_VERSION, validate
from claimready.tenants.models import Tenant
from claimready.timeutil import format_utc
from tests.conftest import Run


def _ingest(app: App, make_tenant: Callable[..., Tenant], sample: Path) -> EvaluateRequest:
    make_tenant()
    ingest_file(app=app, tenant_slug="acme", path=sample, source_kind="defender")
    with transaction(app.sessions) as session:
        observed = max(session.scalars(select(Evidence.observed_to)))
    return EvaluateRequest("acme", as_of=observed + timedelta(days=1), window=timedelta(days=7))


def _stored_hashes(app: App) -> set[str]:
    with transaction(app.sessions) as session:
        return set(session.scalars(select(Evidence.sha256)))


def _cited(document: dict[str, Any]) -> set[str]:
    body = next(iter(document.values()))
    hrefs = {
        e["href"]
        for r in body.get("results", [body])
        for o in r.get("observations", [])
        for e in o.get("relevant-evidence", [])
    }
    return {h.removeprefix("#evidence-") for h in hrefs}


def _resources(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    body = next(iter(document.values()))
    return {r["uuid"]: r for r in body["back-matter"]["resources"]}


def test_export_is_valid_deterministic_and_cites_stored_evidence(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    request = _ingest(app, make_tenant, defender_sample)
    first = export(app=app, request=request)
    again = export(app=app, request=request)
    assert first.assessment_results == again.assessment_results
    assert first.poam == again.poam and first.poam is not None
    validate(first.assessment_results, model="assessment-results")
    validate(first.poam, model="plan-of-action-and-milestones")

    document = first.assessment_results["assessment-results"]
    assert document["metadata"]["oscal-version"] == OSCAL_VERSION
    assert document["metadata"]["last-modified"] == format_utc(request.as_of)
    (result,) = document["results"]
    assert result["start"] == format_utc(request.as_of - request.window)
    assert result["end"] == format_utc(request.as_of)
    control_ids = [t.control.id for t in first.evaluation.controls]
    assert [f["target"]["target-id"] for f in result["findings"]] == control_ids
    assert len({f["uuid"] for f in result["findings"]}) == len(control_ids)

    stored = _stored_hashes(app)
    cited = _cited(first.assessment_results)
    assert cited and cited <= stored
    assert _cited(first.poam) <= stored
    resources = _resources(first.assessment_results)
    hashes = {
        h["value"]
        for r in resources.values()
        for link in r.get("rlinks", [])
        for h in link["hashes"]
    }
    assert hashes == cited
    assert document["import-ap"]["href"].removeprefix("#") in resources


def test_findings_carry_status_continuity_and_nist_selection(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    request = _ingest(app, make_tenant, defender_sample)
    exported = export(app=app, request=request)
    (result,) = exported.assessment_results["assessment-results"]["results"]
    by_control = {f["target"]["target-id"]: f for f in result["findings"]}
    for timeline in exported.evaluation.controls:
        found = by_control[timeline.control.id]
        props = {p["name"]: p["value"] for p in found["props"]}
        assert props["status"] == timeline.at.status
        assert props["gaps"] == str(len(timeline.gaps))
        expected = "satisfied" if timeline.at.status == "pass" else "not-satisfied"
        assert found["target"]["status"]["state"] == expected
    assert by_control["edr-coverage"]["target"]["status"]["reason"] == "fail"
    selected = {
        c["control-id"]
        for s in result["reviewed-controls"]["control-selections"]
        for c in s["include-controls"]
    }
    assert {"ia-2.1", "ac-17"} <= selected
    items = exported.poam["plan-of-action-and-milestones"]["poam-items"] if exported.poam else []
    states = [p["value"] for i in items for p in i["props"] if p["name"] == "gap-state"]
    assert states and states[0] == "open"


def test_a_tampered_document_fails_naming_the_json_path(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    request = _ingest(app, make_tenant, defender_sample)
    document = export(app=app, request=request).assessment_results
    tampered = copy.deepcopy(document)
    tampered["assessment-results"]["results"][0]["findings"][1]["target"]["status"]["state"] = (
        "mostly-fine"
    )
    with pytest.raises(VerificationError) as raised:
        validate(tampered, model="assessment-results")
    assert "$['assessment-results'].results[0].findings[1].target.status.state" in str(raised.value)
    forged = copy.deepcopy(document)
    forged["assessment-results"]["uuid"] = "not-a-uuid"
    with pytest.raises(VerificationError, match=r"\$\['assessment-results'\]\.uuid"):
        validate(forged, model="assessment-results")


def test_cli_export_oscal(run: Run, defender_sample: Path, tmp_path: Path) -> None:
    assert run("init")[0] == 0
    assert run("tenant", "add", "acme")[0] == 0
    code, _, _ = run("ingest", "--tenant", "acme", "--source", "defender", str(defender_sample))
    assert code == 0
    output, plan = tmp_path / "ar.json", tmp_path / "poam.json"
    args = (
        "export",
        "oscal",
        "--tenant",
        "acme",
        "--as-of",
        "2026-05-14T03:00Z",
        "--window",
        "30d",
    )
    code, out, err = run(*args, "--output", str(output), "--poam", str(plan), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["findings"] >= 20 and summary["results"] == 1
    written = json.loads(output.read_text(encoding="utf-8"))
    validate(written, model="assessment-results")
    if summary["poam"] is not None:
        validate(
            json.loads(plan.read_text(encoding="utf-8")), model="plan-of-action-and-milestones"
        )
    before = output.read_bytes()
    assert run(*args, "--output", str(output))[0] == 0
    assert output.read_bytes() == before
    code, _, err = run(*args, "--output", str(tmp_path / "missing" / "ar.json"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("export", "oscal", "--tenant", "ghost", "--output", str(output))
    assert code == 1 and "ghost" in err
