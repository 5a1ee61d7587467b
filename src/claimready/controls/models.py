"""Stored control state: evaluated steps, evaluation runs, exceptions and tuning."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from claimready.db.base import Base, UTCDateTime
from claimready.timeutil import utcnow

PASS = "pass"  # noqa: S105 - a status, not a secret
FAIL = "fail"
UNVERIFIED = "unverified"
EXCEPTED = "excepted"
STATUSES = (PASS, FAIL, UNVERIFIED)


class EvaluationRun(Base):
    """One evaluation of a tenant's controls: what it covered and what evidence it saw."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (Index("ix_evaluation_runs_tenant", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    recomputed_from: Mapped[datetime] = mapped_column(UTCDateTime())
    digest: Mapped[str] = mapped_column(String(64))
    max_evidence_id: Mapped[int] = mapped_column(BigInteger, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(255))
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ControlStep(Base):
    """A control's status for one tenant at one step, with counts and evidence cited."""

    __tablename__ = "control_steps"
    __table_args__ = (UniqueConstraint("tenant_id", "control_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_runs.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    coverage: Mapped[float | None] = mapped_column(Float, default=None)
    in_scope: Mapped[int] = mapped_column(Integer, default=0)
    passing: Mapped[int] = mapped_column(Integer, default=0)
    failing: Mapped[int] = mapped_column(Integer, default=0)
    unverified: Mapped[int] = mapped_column(Integer, default=0)
    excepted: Mapped[int] = mapped_column(Integer, default=0)
    backfilled: Mapped[int] = mapped_column(Integer, default=0)
    evidence_ids: Mapped[list[int]] = mapped_column(JSON, default=list)


class ControlException(Base):
    """An approved exception: a control not applied to some assets until it expires."""

    __tablename__ = "control_exceptions"
    __table_args__ = (Index("ix_control_exceptions_tenant_control", "tenant_id", "control_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), default=None
    )
    reason: Mapped[str] = mapped_column(String(2000))
    compensating_control: Mapped[str] = mapped_column(String(2000))
    approved_by: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ControlTuning(Base):
    """A tenant's change to one field of a control (threshold or freshness); the latest wins."""

    __tablename__ = "control_tuning"
    __table_args__ = (Index("ix_control_tuning_tenant_control", "tenant_id", "control_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(32))
    value: Mapped[Any] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, default=None)
