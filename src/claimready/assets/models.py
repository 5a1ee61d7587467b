"""Asset and identifier models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from claimready.db.base import Base, UTCDateTime
from claimready.timeutil import utcnow


class Asset(Base):
    """An endpoint, server, account or resource of one tenant."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    identifiers: Mapped[list[AssetIdentifier]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )


class AssetIdentifier(Base):
    """One normalized identifier of an asset (hostname, FQDN, serial, MAC, cloud id, UPN, ...)."""

    __tablename__ = "asset_identifiers"
    __table_args__ = (
        Index("ix_asset_identifiers_lookup", "tenant_id", "kind", "value"),
        Index("uq_asset_identifiers_asset", "asset_id", "kind", "value", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(512))
    asset: Mapped[Asset] = relationship(back_populates="identifiers")
