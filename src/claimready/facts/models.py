"""The fact type produced by connectors and stored as Parquet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FactValue = bool | float | int | str | datetime


@dataclass(frozen=True, slots=True)
class Fact:
    """One observation about one asset, before the asset is resolved to an id.

    ``asset_key`` is the connector's key for the asset within one piece of
    evidence; ingest maps it to the tenant's reconciled asset.
    """

    asset_key: str
    signal: str
    value: FactValue
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A fact as read back from the store."""

    asset_id: int
    signal: str
    value: FactValue
    observed_at: datetime
    evidence_id: int
    ledger_index: int | None
