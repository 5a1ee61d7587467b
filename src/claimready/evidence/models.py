"""Evidence records: collection metadata for each stored blob."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from claimready.db.base import Base, UTCDateTime
from claimready.timeutil import utcnow

# How the observed time of a piece of evidence was established.
OBSERVED_FROM_CONTENT = "content"
OBSERVED_FROM_USER = "user"
OBSERVED_FROM_COLLECTION = "collection"


class Evidence(Base):
    """One raw artifact of one tenant, with where, when and how it was collected."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(128))
    original_name: Mapped[str] = mapped_column(String(1024))
    connector: Mapped[str] = mapped_column(String(64))
    connector_version: Mapped[str] = mapped_column(String(32))
    collector: Mapped[str] = mapped_column(String(255))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    observed_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    observed_to: Mapped[datetime] = mapped_column(UTCDateTime())
    observed_origin: Mapped[str] = mapped_column(String(16))
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, default=None)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    fact_count: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
