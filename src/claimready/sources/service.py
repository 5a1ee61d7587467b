"""Source service functions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.sources.models import Source


def get_by_name(*, session: Session, tenant_id: int, name: str) -> Source | None:
    """The tenant's source called ``name``, or None."""
    query = select(Source).where(Source.tenant_id == tenant_id, Source.name == name)
    return session.scalars(query).one_or_none()


def get_or_create(
    *, session: Session, tenant_id: int, kind: str, name: str | None = None
) -> Source:
    """The tenant's source called ``name`` (default: the kind), created on first use."""
    source_name = name or kind
    source = get_by_name(session=session, tenant_id=tenant_id, name=source_name)
    if source is None:
        source = Source(tenant_id=tenant_id, kind=kind, name=source_name)
        session.add(source)
        session.flush()
    return source


def get_all(*, session: Session, tenant_id: int) -> Sequence[Source]:
    """Every source of the tenant, by name."""
    query = select(Source).where(Source.tenant_id == tenant_id).order_by(Source.name)
    return session.scalars(query).all()
