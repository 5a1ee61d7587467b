"""Options shared by several commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from claimready.errors import UsageError
from claimready.timeutil import parse_utc

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]
TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug, e.g. acme")]


def parse_moment(value: str | None, *, option: str) -> datetime | None:
    """Parse a user-given timestamp option (ISO 8601 with a zone, e.g. 2026-05-14T03:00Z)."""
    if value is None:
        return None
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise UsageError(
            f"{option} {value!r}: expected an ISO 8601 time with a zone, e.g. 2026-05-14T03:00Z"
        ) from exc
