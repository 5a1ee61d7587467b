"""Asset identity: normalization and reconciliation across sources."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from claimready.app import App
from claimready.assets import service
from claimready.assets.identity import (
    FQDN,
    HOSTNAME,
    MAC,
    SERIAL,
    AssetObservation,
    Identifier,
    host_identifiers,
    identifier,
    source_identifier,
)
from claimready.db.engine import transaction
from claimready.tenants.models import Tenant


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (MAC, "00-B0-D0-63-C2-26", "00:b0:d0:63:c2:26"),
        (MAC, "00b0.d063.c226", "00:b0:d0:63:c2:26"),
        (MAC, "00:00:00:00:00:00", None),
        (MAC, "not-a-mac", None),
        (SERIAL, " 5cg1234xyz ", "5CG1234XYZ"),
        (SERIAL, "To be filled by O.E.M.", None),
        (HOSTNAME, "WS-12.corp.example.com.", "ws-12"),
        (FQDN, "WS-12.Corp.Example.com.", "ws-12.corp.example.com"),
        (FQDN, "WS-12", None),
    ],
)
def test_normalization(kind: str, raw: str, expected: str | None) -> None:
    found = identifier(kind, raw)
    assert (found.value if found else None) == expected


def _observe(key: str, *idents: Identifier, name: str = "x") -> AssetObservation:
    return AssetObservation(key=key, kind="workstation", display_name=name, identifiers=idents)


def test_short_name_and_fqdn_from_two_tools_are_one_asset(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    rmm = _observe("r1", source_identifier("rmm", "17"), *host_identifiers("WS-12"), name="WS-12")
    edr = _observe(
        "e1",
        source_identifier("defender", "abc"),
        *host_identifiers("ws-12.corp.example.com"),
        name="ws-12.corp.example.com",
    )
    with transaction(app.sessions) as session:
        first = service.reconcile(session=session, tenant_id=tenant.id, observation=rmm)
        second = service.reconcile(session=session, tenant_id=tenant.id, observation=edr)
        assert first.id == second.id
        assert second.display_name == "ws-12.corp.example.com"
        kinds = {i.kind for i in second.identifiers}
        assert {"source_id", HOSTNAME, FQDN} <= kinds
        assert len(service.get_all(session=session, tenant_id=tenant.id)) == 1


def test_same_short_name_in_two_domains_stays_two_assets(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    with transaction(app.sessions) as session:
        corp = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("a", *host_identifiers("ws-12.corp.example.com")),
        )
        lab = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("b", *host_identifiers("ws-12.lab.example.com")),
        )
        assert corp.id != lab.id
        # A bare short name is now ambiguous and merges nothing.
        bare = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("c", *host_identifiers("WS-12")),
        )
        assert bare.id not in (corp.id, lab.id)


def test_mac_alone_never_merges_but_serial_does(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    mac = Identifier(MAC, "00:b0:d0:63:c2:26")
    with transaction(app.sessions) as session:
        one = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("1", source_identifier("defender", "a"), mac),
        )
        two = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("2", source_identifier("defender", "b"), mac),
        )
        assert one.id != two.id
        serial = Identifier(SERIAL, "5CG1")
        three = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("3", source_identifier("defender", "c"), serial),
        )
        four = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("4", source_identifier("rmm", "9"), serial),
        )
        assert three.id == four.id


def test_assets_of_another_tenant_are_invisible(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    with transaction(app.sessions) as session:
        asset = service.reconcile(
            session=session,
            tenant_id=acme.id,
            observation=_observe("1", *host_identifiers("ws-1.acme.example")),
        )
        other = service.reconcile(
            session=session,
            tenant_id=globex.id,
            observation=_observe("1", *host_identifiers("ws-1.acme.example")),
        )
        assert asset.id != other.id
        assert service.get(session=session, tenant_id=globex.id, asset_id=asset.id) is None


def test_an_index_kept_across_transactions_catches_up_with_other_writers(
    app: App, make_tenant: Callable[..., Tenant]
) -> None:
    """An ingest keeps one index for a group of files; assets committed meanwhile still match."""
    tenant = make_tenant()
    rmm = _observe("r", source_identifier("rmm", "17"), *host_identifiers("ws-7.corp.example"))
    with transaction(app.sessions) as session:
        service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("o", source_identifier("rmm", "1")),
        )
    with transaction(app.sessions) as session:
        index = service.IdentityIndex.load(session=session, tenant_id=tenant.id)
        provisional = index.reconcile(rmm)
        mine = index.flush(session)[provisional]
    with transaction(app.sessions) as session:  # another writer, between two of our files
        theirs = service.reconcile(
            session=session,
            tenant_id=tenant.id,
            observation=_observe("e", source_identifier("defender", "x"), Identifier(SERIAL, "9Z")),
        )
    with transaction(app.sessions) as session:
        index.catch_up(session)
        again = _observe("r2", source_identifier("rmm", "17"))
        other = _observe("e2", source_identifier("rmm", "18"), Identifier(SERIAL, "9Z"))
        assert index.reconcile(again) == mine  # our own asset, read back unchanged
        assert index.reconcile(other) == theirs.id  # theirs, caught up
        index.flush(session)
        assert len(service.get_all(session=session, tenant_id=tenant.id)) == 3
