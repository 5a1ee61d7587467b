"""Tenants on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from claimready.app import App
from claimready.db.engine import transaction
from claimready.errors import ConflictError, NotFoundError, UsageError
from claimready.tenants import service
from claimready.tenants.models import Tenant


def test_create_list_and_find(app: App, make_tenant: Callable[..., Tenant]) -> None:
    make_tenant("globex", "Globex Corp")
    make_tenant("acme")
    with transaction(app.sessions) as session:
        assert [t.slug for t in service.get_all(session=session)] == ["acme", "globex"]
        found = service.get_by_slug_or_raise(session=session, slug="globex")
        assert found.name == "Globex Corp"


def test_duplicate_and_invalid_slugs_are_refused(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    make_tenant("acme")
    with pytest.raises(ConflictError, match="already exists"):
        make_tenant("acme")
    with pytest.raises(UsageError, match="slug 'Bad Name'"):
        make_tenant("Bad Name")
    with (
        transaction(app.sessions) as session,
        pytest.raises(UsageError, match="unknown time zone"),
    ):
        service.create(session=session, slug="zoned", timezone="Mars/Olympus")


def test_unknown_tenant_names_the_known_ones(app: App, make_tenant: Callable[..., Tenant]) -> None:
    make_tenant("acme")
    with (
        transaction(app.sessions) as session,
        pytest.raises(NotFoundError, match=r"unknown tenant 'acmee' \(known: acme\)"),
    ):
        service.get_by_slug_or_raise(session=session, slug="acmee")
