"""Asset service functions: lookup, and reconciliation of observations into assets.

Reconciliation runs against an in-memory :class:`IdentityIndex` of the
tenant's identifiers, so an ingest of many thousands of observations costs a
few bulk statements rather than queries per record. The rule itself is in
:mod:`claimready.assets.identity` and docs/assets.md.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, insert, select, update
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


def _prefer_name(current: str, offered: str) -> bool:
    """A real host name beats an opaque source id; a longer (qualified) name beats a short one."""
    if ":" in current and ":" not in offered:
        return True
    return "." in offered and "." not in current and offered.lower().startswith(current.lower())


class IdentityIndex:
    """The tenant's assets and identifiers in memory, with pending changes to write.

    New assets get provisional negative ids until :meth:`flush` inserts them.
    """

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self._owners: dict[Identifier, set[int]] = defaultdict(set)
        self._idents: dict[int, set[Identifier]] = defaultdict(set)
        self._names: dict[int, str] = {}
        self._kinds: dict[int, str] = {}
        self._new_idents: list[tuple[int, Identifier]] = []
        self._renamed: set[int] = set()
        self._provisional = itertools.count(-1, -1)
        #: The highest asset and identifier row ids read so far.
        self._asset_mark = 0
        self._ident_mark = 0

    @classmethod
    def load(cls, *, session: Session, tenant_id: int) -> IdentityIndex:
        """Read every asset and identifier of the tenant."""
        index = cls(tenant_id)
        index.catch_up(session)
        return index

    def catch_up(self, session: Session) -> None:
        """Read the assets and identifiers stored since this index last read (all, at first).

        An index kept across transactions (an ingest's group of files) calls
        this at the start of each, so what other writers committed meanwhile
        is matched too. Rows this index wrote itself are read back unchanged.
        Not seen until the next full load: names changed by others, and rows
        committed after rows with higher ids (PostgreSQL numbers rows at
        insert, not at commit), which at worst leaves a second asset for the
        same machine, as two concurrent loads always could.
        """
        connection = session.connection()  # Core rows: no ORM overhead for large tenants
        assets = cast(Table, Asset.__table__)
        for asset_id, kind, name in connection.execute(
            select(assets.c.id, assets.c.kind, assets.c.display_name).where(
                assets.c.tenant_id == self.tenant_id, assets.c.id > self._asset_mark
            )
        ):
            self._names[asset_id] = name
            self._kinds[asset_id] = kind
            self._asset_mark = max(self._asset_mark, asset_id)
        identifiers = cast(Table, AssetIdentifier.__table__)
        owners, idents = self._owners, self._idents
        for row_id, asset_id, kind, value in connection.execute(
            select(
                identifiers.c.id, identifiers.c.asset_id, identifiers.c.kind, identifiers.c.value
            ).where(identifiers.c.tenant_id == self.tenant_id, identifiers.c.id > self._ident_mark)
        ):
            ident = Identifier(kind, value)
            owners[ident].add(asset_id)
            idents[asset_id].add(ident)
            self._ident_mark = max(self._ident_mark, row_id)

    def match(self, observation: AssetObservation) -> int | None:
        """The asset this observation describes, by the documented rule, or None."""
        by_kind: dict[str, list[Identifier]] = defaultdict(list)
        for ident in observation.identifiers:
            by_kind[ident.kind].append(ident)
        for kind in MATCH_ORDER:
            for ident in by_kind.get(kind, ()):
                candidates = [
                    asset_id
                    for asset_id in self._owners.get(ident, ())
                    if not conflicts(self._idents[asset_id], observation.identifiers)
                ]
                if len(candidates) == 1:
                    return candidates[0]
                if len(candidates) > 1 and kind == HOSTNAME:
                    return None  # an ambiguous short name merges nothing
        return None

    def reconcile(self, observation: AssetObservation) -> int:
        """Attach the observation to its asset (a new one if none matches); return its id."""
        asset_id = self.match(observation)
        if asset_id is None:
            asset_id = next(self._provisional)
            self._names[asset_id] = observation.display_name
            self._kinds[asset_id] = observation.kind
        elif _prefer_name(self._names[asset_id], observation.display_name):
            self._names[asset_id] = observation.display_name
            self._renamed.add(asset_id)
        known = self._idents[asset_id]
        for ident in sorted(set(observation.identifiers) - known):
            known.add(ident)
            self._owners[ident].add(asset_id)
            self._new_idents.append((asset_id, ident))
        return asset_id

    def flush(self, session: Session) -> dict[int, int]:
        """Write new assets, identifiers and names; return provisional id -> real id."""
        provisional = sorted((a for a in self._names if a < 0), reverse=True)
        real: dict[int, int] = {}
        if provisional:
            table = cast(Table, Asset.__table__)
            inserted = session.scalars(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),
                [
                    {
                        "tenant_id": self.tenant_id,
                        "kind": self._kinds[a],
                        "display_name": self._names[a],
                    }
                    for a in provisional
                ],
            ).all()
            real = dict(zip(provisional, inserted, strict=True))
        self._rekey(real)
        if self._new_idents:
            session.execute(
                insert(cast(Table, AssetIdentifier.__table__)),
                [
                    {
                        "tenant_id": self.tenant_id,
                        "asset_id": real.get(a, a),
                        "kind": i.kind,
                        "value": i.value,
                    }
                    for a, i in self._new_idents
                ],
            )
        for asset_id in self._renamed:
            session.execute(
                update(Asset).where(Asset.id == asset_id).values(display_name=self._names[asset_id])
            )
        self._new_idents.clear()
        self._renamed.clear()
        return real

    def _rekey(self, real: dict[int, int]) -> None:
        for old, new in real.items():
            self._names[new] = self._names.pop(old)
            self._kinds[new] = self._kinds.pop(old)
            idents = self._idents.pop(old, set())
            self._idents[new] = idents
            for ident in idents:
                self._owners[ident].discard(old)
                self._owners[ident].add(new)


def reconcile(*, session: Session, tenant_id: int, observation: AssetObservation) -> Asset:
    """Reconcile one observation and return its asset (for single updates; ingest batches)."""
    index = IdentityIndex.load(session=session, tenant_id=tenant_id)
    asset_id = index.reconcile(observation)
    asset_id = index.flush(session).get(asset_id, asset_id)
    session.expire_all()
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise LookupError(f"asset {asset_id} vanished during reconciliation")
    return asset
