"""Stored evaluation results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from claimready.db.base import Base, UTCDateTime
from claimready.timeutil import utcnow

PASS = "pass"  # noqa: S105 - a status, not a secret
FAIL = "fail"
UNVERIFIED = "unverified"
STATUSES = (PASS, FAIL, UNVERIFIED)


class Evaluation(Base):
    """One control's status for one tenant at one moment, with what it rests on."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_tenant_control_at", "tenant_id", "control_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    coverage: Mapped[float | None] = mapped_column(Float, default=None)
    in_scope: Mapped[int] = mapped_column(Integer, default=0)
    passing: Mapped[int] = mapped_column(Integer, default=0)
    failing: Mapped[int] = mapped_column(Integer, default=0)
    unverified: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
