"""Declared sources, silence recorded as evidence, and the facts listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from claimready.app import App
from claimready.errors import ConfigError
from claimready.evidence.service import ingest_file
from claimready.sources.config import load_sources
from claimready.sources.status import record_silence, statuses
from claimready.tenants.models import Tenant
from claimready.timeutil import utcnow
from tests.conftest import Run

SOURCES = """
tenants:
  acme:
    - name: defender
      kind: defender
      expect_every: 26h
    - name: okta
      kind: okta
      expect_every: 1d
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tenants: {acme: [{name: x, kind: y, expect_every: soon}]}",
            r"tenants\.acme\.0\.expect_every",
        ),
        ("tenants: {acme: [{name: x, kind: y, colect: {}}]}", "colect"),
        ("tenants: {acme: [{name: x, kind: y}, {name: x, kind: z}]}", "'x' declared twice"),
        ("tenants: [", "not valid YAML"),
    ],
)
def test_bad_declarations_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_sources(path)
    assert str(path) in str(caught.value)


def test_silence_is_recorded_once_per_interval_as_ledgered_facts(
    app: App, make_tenant: Callable[..., Tenant], defender_sample: Path
) -> None:
    make_tenant("acme")
    app.settings.effective_sources_file.parent.mkdir(parents=True, exist_ok=True)
    app.settings.effective_sources_file.write_text(SOURCES)
    ingest_file(app=app, tenant_slug="acme", path=defender_sample, source_kind="defender")
    now = utcnow()
    status = {s.name: s.silent for s in statuses(app=app, tenant_slug="acme", now=now)}
    assert status == {"defender": False, "okta": True}
    later = now + timedelta(hours=27)
    recorded = record_silence(app=app, tenant_slug="acme", now=later)
    assert sorted(r.name for r in recorded) == ["defender", "okta"]
    assert record_silence(app=app, tenant_slug="acme", now=later + timedelta(hours=1)) == []
    again = record_silence(app=app, tenant_slug="acme", now=later + timedelta(days=2))
    assert sorted(r.name for r in again) == ["defender", "okta"]


def test_facts_command_lists_what_was_derived(run: Run, defender_sample: Path) -> None:
    run("init")
    run("tenant", "add", "acme")
    run("ingest", "--tenant", "acme", str(defender_sample))
    code, out, _ = run("facts", "--tenant", "acme", "--signal", "edr", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 6
    assert {r["evidence_id"] for r in rows} == {1} and {r["ledger_index"] for r in rows} == {0}
    code, out, _ = run("facts", "--tenant", "acme", "--signal", "edr.onboarded", "--json")
    assert sorted(r["value"] for r in json.loads(out)) == [False, True]
    code, out, _ = run("sources", "--tenant", "acme", "--json")
    assert [(s["name"], s["evidence"]) for s in json.loads(out)] == [("defender", 1)]
