"""Asset service functions: lookup and reconciliation of observations into assets."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.assets.identity import (
    HOSTNAME,
    MATCH_ORDER,
    AssetObservation,
    Identifier,
    conflicts,
)
from claimready.assets.models import Asset, AssetIdentifier


def get(*, session: Session, tenant_id: int, asset_id: int) -> Asset | None:
    """The tenant's asset ``asset_id``, or None (also when it belongs to another tenant)."""
    asset = session.get(Asset, asset_id)
    return asset if asset is not None and asset.tenant_id == tenant_id else None


def get_all(*, session: Session, tenant_id: int) -> Sequence[Asset]:
    """Every asset of the tenant."""
    query = select(Asset).where(Asset.tenant_id == tenant_id).order_by(Asset.id)
    return session.scalars(query).all()


def _candidates(*, session: Session, tenant_id: int, ident: Identifier) -> list[Asset]:
    query = (
        select(Asset)
        .join(AssetIdentifier)
        .where(
            AssetIdentifier.tenant_id == tenant_id,
            AssetIdentifier.kind == ident.kind,
            AssetIdentifier.value == ident.value,
        )
        .distinct()
    )
    return list(session.scalars(query).all())


def _identifiers_of(asset: Asset) -> set[Identifier]:
    return {Identifier(i.kind, i.value) for i in asset.identifiers}


def find_match(*, session: Session, tenant_id: int, observation: AssetObservation) -> Asset | None:
    """The existing asset this observation describes, by the documented rule, or None."""
    by_kind: dict[str, list[Identifier]] = {}
    for ident in observation.identifiers:
        by_kind.setdefault(ident.kind, []).append(ident)
    for kind in MATCH_ORDER:
        for ident in by_kind.get(kind, []):
            candidates = [
                asset
                for asset in _candidates(session=session, tenant_id=tenant_id, ident=ident)
                if not conflicts(_identifiers_of(asset), observation.identifiers)
            ]
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1 and kind == HOSTNAME:
                return None  # an ambiguous short name merges nothing
    return None


def reconcile(*, session: Session, tenant_id: int, observation: AssetObservation) -> Asset:
    """Attach ``observation`` to its asset (creating one if none matches); return the asset."""
    asset = find_match(session=session, tenant_id=tenant_id, observation=observation)
    if asset is None:
        asset = Asset(
            tenant_id=tenant_id, kind=observation.kind, display_name=observation.display_name
        )
        session.add(asset)
        session.flush()
    known = _identifiers_of(asset)
    for ident in sorted(set(observation.identifiers) - known):
        asset.identifiers.append(
            AssetIdentifier(
                tenant_id=tenant_id, asset_id=asset.id, kind=ident.kind, value=ident.value
            )
        )
    if _prefer_name(asset.display_name, observation.display_name):
        asset.display_name = observation.display_name
    session.flush()
    return asset


def _prefer_name(current: str, offered: str) -> bool:
    """A real host name beats an opaque source id; a longer (qualified) name beats a short one."""
    if ":" in current and ":" not in offered:
        return True
    return "." in offered and "." not in current and offered.lower().startswith(current.lower())
