"""Tenant service functions."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready.errors import ConflictError, NotFoundError, UsageError
from claimready.tenants.models import Tenant, TenantCreate


def get_by_slug(*, session: Session, slug: str) -> Tenant | None:
    """The tenant named ``slug``, or None."""
    return session.scalars(select(Tenant).where(Tenant.slug == slug)).one_or_none()


def get_by_slug_or_raise(*, session: Session, slug: str) -> Tenant:
    """The tenant named ``slug``; NotFoundError naming the known tenants otherwise."""
    tenant = get_by_slug(session=session, slug=slug)
    if tenant is None:
        known = ", ".join(t.slug for t in get_all(session=session)) or "none yet"
        raise NotFoundError(
            f"unknown tenant {slug!r} (known: {known}); create it with: "
            f"claimready tenant add {slug}"
        )
    return tenant


def get_all(*, session: Session) -> Sequence[Tenant]:
    """Every tenant, by slug."""
    return session.scalars(select(Tenant).order_by(Tenant.slug)).all()


def create(
    *, session: Session, slug: str, name: str | None = None, timezone: str = "UTC"
) -> Tenant:
    """Create a tenant; ConflictError if the slug is taken, UsageError if it is invalid."""
    try:
        data = TenantCreate(slug=slug, name=name or slug, timezone=timezone)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"tenant {first['loc'][0]} {slug!r}: {first['msg']}") from exc
    if get_by_slug(session=session, slug=data.slug) is not None:
        raise ConflictError(f"tenant {data.slug!r} already exists")
    tenant = Tenant(slug=data.slug, name=data.name, timezone=data.timezone)
    session.add(tenant)
    session.flush()
    return tenant
