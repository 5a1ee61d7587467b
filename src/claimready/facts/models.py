"""The fact type produced by connectors, and the registry of Parquet fact files."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple, overload

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from claimready.db.base import Base, UTCDateTime
from claimready.timeutil import utcnow

FactValue = bool | float | int | str | datetime


class Fact(NamedTuple):
    """One observation about one asset, before the asset is resolved to an id.

    ``asset_key`` is the connector's key for the asset within one piece of
    evidence; ingest maps it to the tenant's reconciled asset. A tuple, since
    connectors build millions of them.
    """

    asset_key: str
    signal: str
    value: FactValue
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class FactColumns(Sequence[Fact]):
    """Facts held as four equal-length columns instead of one tuple each.

    A fast connector appends to the columns as it reads, and the fact writer
    turns them into Arrow arrays without building a tuple per fact; anyone
    else sees an ordinary sequence of :class:`Fact`.
    """

    asset_keys: list[str]
    signals: list[str]
    values: list[FactValue]
    observed_at: list[datetime]

    def __post_init__(self) -> None:
        lengths = {len(self.asset_keys), len(self.signals), len(self.values), len(self.observed_at)}
        if len(lengths) > 1:
            raise ValueError(f"fact columns of different lengths: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.asset_keys)

    def __iter__(self) -> Iterator[Fact]:
        columns = (self.asset_keys, self.signals, self.values, self.observed_at)
        return map(Fact, *columns)

    @overload
    def __getitem__(self, index: int) -> Fact: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Fact, ...]: ...

    def __getitem__(self, index: int | slice) -> Fact | tuple[Fact, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        return Fact(
            self.asset_keys[index], self.signals[index], self.values[index], self.observed_at[index]
        )


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A fact as read back from the store."""

    asset_id: int
    signal: str
    value: FactValue
    observed_at: datetime
    evidence_id: int
    ledger_index: int | None


class FactFile(Base):
    """One committed Parquet file of one tenant's facts observed from ``day`` to ``last_day``.

    Ingest writes a file per observed day; compaction merges a crowded day into
    one file, and a past month into one file spanning its days.

    A file counts only once its row is committed: ingest writes the file,
    then commits the row; compaction commits the merged file's row and removes
    the rows of the files it replaced in the same transaction, then unlinks them.
    """

    __tablename__ = "fact_files"
    __table_args__ = (Index("ix_fact_files_tenant_day", "tenant_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    evidence_count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
