"""Live collection through the scheduler: recorded API responses in, ledgered evidence out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from claimready.app import App
from claimready.sources.collect import run_cycle
from claimready.tenants.models import Tenant

MICROSOFT = Path(__file__).parent / "assets" / "microsoft"
SOURCES = """
tenants:
  acme:
    - name: entra
      kind: entra_registration
      expect_every: 26h
      collect:
        every: 6h
        settings: {tenant_id: 11111111-2222-3333-4444-555555555555, client_id: app-id}
        secrets: {client_secret: ACME_ENTRA_SECRET}
"""


def _graph(requests: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.host == "login.microsoftonline.com":
            return httpx.Response(200, content=(MICROSOFT / "token_response.json").read_bytes())
        if request.url.path.endswith("/userRegistrationDetails"):
            body = (MICROSOFT / "entra_registration.json").read_bytes()
            return httpx.Response(200, content=body)
        return httpx.Response(404, json={"error": {"code": "NotFound"}})

    return httpx.MockTransport(handle)


def _declare(app: App) -> None:
    path = app.settings.effective_sources_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SOURCES)


def test_collects_due_sources_and_skips_fresh_ones(
    app: App, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tenant("acme")
    _declare(app)
    monkeypatch.setenv("ACME_ENTRA_SECRET", "s3cret-value")
    requests: list[httpx.Request] = []
    with httpx.Client(transport=_graph(requests)) as http:
        report = run_cycle(app=app, http=http)
        assert report.failures == [] and report.silent == []
        [result] = report.collected
        users = json.loads((MICROSOFT / "entra_registration.json").read_bytes())["value"]
        assert result.connector == "entra_registration" and result.record_count == len(users)
        assert result.ledger_index == 0
        assert run_cycle(app=app, http=http).collected == []  # not due again for 6 h
    token = next(r for r in requests if r.url.host == "login.microsoftonline.com")
    assert b"s3cret-value" in token.content  # sent to the token endpoint, and only there
    assert all(b"s3cret-value" not in r.content for r in requests if r is not token)


def test_a_missing_secret_is_a_reported_failure(
    app: App, make_tenant: Callable[..., Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tenant("acme")
    _declare(app)
    monkeypatch.delenv("ACME_ENTRA_SECRET", raising=False)
    with httpx.Client(transport=_graph([])) as http:
        report = run_cycle(app=app, http=http, force=True)
    assert report.collected == []
    assert report.failures and "ACME_ENTRA_SECRET" in report.failures[0]
